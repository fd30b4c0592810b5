//! Result codes and the result file (`cache/upload_<type>_result.xml`, DESIGN §6).
//!
//! The file keeps the License Server uploader's format so scripts written for it keep working.
//! It is rewritten atomically after every attempt, values XML-escaped.

use std::path::Path;

use crate::clock::Timestamp;
use crate::fsutil::write_atomic;
use crate::programs::Program;

/// Every outcome an upload attempt can have. README.md documents each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The receiver acknowledged the bundle with a valid receipt.
    Success,
    /// DNS failure, connection refused or reset: the receiver could not be reached.
    NetworkOpen,
    /// The TLS handshake failed (untrusted certificate, wrong host name, protocol).
    Tls,
    /// The proxy refused the agent's credentials (HTTP 407).
    ProxyAuth,
    /// The proxy refused to open the tunnel (another status: many proxies answer bad
    /// credentials with 401 or 403), or could not reach the endpoint.
    Proxy,
    /// The receiver did not answer in time.
    Timeout,
    /// The receiver answered a status that asks to try later (408, 425, 429, 5xx) or an
    /// unexpected one.
    HttpStatus,
    /// 401/403: credentials or registration are missing or wrong.
    Auth,
    /// 400, 413, 415, 422: the receiver refused this bundle for good; it was quarantined.
    Rejected,
    /// The receiver answered 2xx without a valid receipt (garbage, wrong bundle, bad signature).
    Receipt,
    /// The bundle on disk failed verification and was quarantined.
    Bundle,
    /// A local file could not be read or written (disk full, permissions).
    Disk,
    /// The upload configuration is unusable (CA file, proxy URL).
    Config,
    /// Reported by hand without a receipt (`callhome export confirm`): the bundles left the
    /// spool, unverified.
    ManualUnverified,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Success => "CTX_UPLOADER_SUCCESS",
            Code::NetworkOpen => "CTX_UPLOADER_ERROR_NETWORK_OPEN",
            Code::Tls => "CTX_UPLOADER_ERROR_TLS",
            Code::ProxyAuth => "CTX_UPLOADER_ERROR_PROXY_AUTH",
            Code::Proxy => "CTX_UPLOADER_ERROR_PROXY",
            Code::Timeout => "CTX_UPLOADER_ERROR_TIMEOUT",
            Code::HttpStatus => "CTX_UPLOADER_ERROR_HTTP_STATUS",
            Code::Auth => "CTX_UPLOADER_ERROR_AUTH",
            Code::Rejected => "CTX_UPLOADER_ERROR_REJECTED",
            Code::Receipt => "CTX_UPLOADER_ERROR_RECEIPT",
            Code::Bundle => "CTX_UPLOADER_ERROR_BUNDLE",
            Code::Disk => "CTX_UPLOADER_ERROR_DISK",
            Code::Config => "CTX_UPLOADER_ERROR_CONFIG",
            Code::ManualUnverified => "CTX_UPLOADER_MANUAL_UNVERIFIED",
        }
    }
}

/// Escapes text for XML element content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The result document for one attempt.
pub fn render(program: Program, code: Code, message: &str, arg: Option<&str>, at: Timestamp) -> String {
    let arg = arg.map(|a| format!("<Arg>{}</Arg>", xml_escape(a))).unwrap_or_default();
    format!(
        "<CtxUploaderResult><Code>{}</Code><Msg>{}</Msg>{arg}<t>{at}</t><UploadType>{}</UploadType></CtxUploaderResult>\n",
        code.as_str(),
        xml_escape(message),
        program.result_type()
    )
}

/// Writes the result file atomically.
pub fn write(
    path: &Path,
    program: Program,
    code: Code,
    message: &str,
    arg: Option<&str>,
    at: Timestamp,
) -> std::io::Result<()> {
    write_atomic(path, render(program, code, message, arg, at).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_format_and_escapes() {
        assert_eq!(
            render(Program::Telemetry, Code::Success, "", None, 1679283497),
            "<CtxUploaderResult><Code>CTX_UPLOADER_SUCCESS</Code><Msg></Msg><t>1679283497</t><UploadType>CTX_UPLOAD_TYPE_COMPLIANCE</UploadType></CtxUploaderResult>\n"
        );
        let s = render(Program::Ceip, Code::NetworkOpen, "a <b> & c", Some("host:443"), 5);
        assert!(s.contains("<Msg>a &lt;b&gt; &amp; c</Msg><Arg>host:443</Arg>"), "{s}");
        assert!(s.contains("CTX_UPLOAD_TYPE_USAGE"));
    }
}
