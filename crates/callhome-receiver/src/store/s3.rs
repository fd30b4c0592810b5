//! Sending a checked bundle from the spool to a bucket: one PUT when small, a multipart upload
//! of bounded memory when not.

use std::path::Path;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{MULTIPART_OVER, PART_SIZE, internal};
use crate::Refusal;

/// Sends the file at `from` to `to`: one PUT when small, else a multipart upload of
/// [`PART_SIZE`] parts with at most two in flight, so memory stays bounded.
pub(super) async fn upload_file(objects: &dyn ObjectStore, from: &Path, to: &ObjectPath) -> Result<(), Refusal> {
    let mut file = tokio::fs::File::open(from).await.map_err(|e| internal("reopening the checked bundle", e))?;
    let size = file.metadata().await.map_err(|e| internal("reopening the checked bundle", e))?.len();
    if size <= MULTIPART_OVER {
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf).await.map_err(|e| internal("reading the checked bundle", e))?;
        objects.put(to, PutPayload::from(buf)).await.map_err(|e| internal("upload", e))?;
        return Ok(());
    }
    let upload = objects.put_multipart(to).await.map_err(|e| internal("starting a multipart upload", e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(internal("reading the checked bundle", e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(2).await {
            let _ = writer.abort().await;
            return Err(internal("multipart upload", e));
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| internal("completing the multipart upload", e))?;
    Ok(())
}
