//! Why a request failed before any HTTP answer, read from reqwest's error chain by type wherever
//! a type tells.
//!
//! Typed: a timeout (`reqwest::Error::is_timeout`); TLS, by a `rustls::Error` in the chain (an
//! untrusted or invalid certificate, a handshake alert) or by the `UnexpectedEof` I/O error
//! tokio-rustls gives when the server hangs up mid-handshake while connecting. Text: only how an
//! HTTP proxy's CONNECT went, in [`tunnel`], because no type says it (see there).

use std::error::Error;

use crate::fsutil::causes;

/// What went wrong, in the terms the result codes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The proxy wants (other) credentials: it answered CONNECT with 407.
    ProxyAuth,
    /// The proxy itself could not be reached.
    ProxyDown,
    /// The proxy answered CONNECT with something other than 200 or 407 (or nothing sensible).
    TunnelRefused,
    /// No answer in time (connect, read or the whole request).
    Timeout,
    /// The TLS handshake with the endpoint failed.
    Tls,
    /// Anything else on the way: DNS, a refused or reset connection.
    Network,
}

impl Cause {
    pub(super) fn of(e: &reqwest::Error) -> Cause {
        // The causes only: the top-level message holds the URL, whose digits and words must not
        // be mistaken for a status or a proxy's answer.
        if let Some(c) = e.source().and_then(|s| causes(s).find_map(|c| tunnel(&c.to_string()))) {
            c
        } else if e.is_timeout() {
            Cause::Timeout
        } else if is_tls(e) {
            Cause::Tls
        } else {
            Cause::Network
        }
    }
}

fn is_tls(e: &reqwest::Error) -> bool {
    // While connecting, only the TLS handshake reads from the endpoint (a proxy's answer to
    // CONNECT is a tunnel error, read before this), so an end of file then is the endpoint hanging
    // up mid-handshake: tokio-rustls's "tls handshake eof".
    let handshake_eof = |c: &(dyn Error + 'static)| {
        e.is_connect()
            && c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    };
    causes(e).any(|c| c.is::<rustls::Error>() || handshake_eof(c))
}

/// How a proxy's CONNECT went, from one error's text: the one classification here that reads
/// text, because the upstream gives no type for it. reqwest 0.13 tunnels through hyper-util's
/// `Tunnel`, whose `TunnelError` (`ProxyAuthRequired`, `ConnectFailed`, `TunnelUnsuccessful`, …)
/// lives in a private module (`hyper_util::client::legacy::connect::proxy` re-exports `Tunnel`
/// only), so it cannot be downcast to; reqwest's own `Error` has no proxy predicate. Its
/// `Display` ("tunnel error: …") is all there is. The older spellings are kept.
fn tunnel(message: &str) -> Option<Cause> {
    let m = message.to_ascii_lowercase();
    if m.contains("proxy authentication") || m.contains("proxy authorization") {
        Some(Cause::ProxyAuth)
    } else if m.contains("tunnel error") && m.contains("underlying connection") {
        Some(Cause::ProxyDown)
    } else if m.contains("tunnel error") || m.contains("tunnel unsuccessful") {
        Some(Cause::TunnelRefused)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_utils_tunnel_errors_are_read_as_what_they_mean() {
        // The Display texts of hyper-util 0.1's TunnelError.
        assert_eq!(tunnel("tunnel error: proxy authorization required"), Some(Cause::ProxyAuth));
        assert_eq!(tunnel("tunnel error: failed to create underlying connection"), Some(Cause::ProxyDown));
        assert_eq!(tunnel("tunnel error: unsuccessful"), Some(Cause::TunnelRefused));
        assert_eq!(tunnel("tunnel error: unexpected end of file"), Some(Cause::TunnelRefused));
        assert_eq!(tunnel("tcp connect error: Connection refused (os error 111)"), None);
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_found() {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::HandshakeNotComplete);
        assert!(causes(&io).any(|c| c.is::<rustls::Error>()));
    }
}
