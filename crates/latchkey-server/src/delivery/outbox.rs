//! The development outbox: each message written to its own file under the data
//! directory, so the service runs with no mail server or SMS provider.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::SendError;

#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Writes `contents` to `<dir>/<name>` through a temporary file, so a reader
    /// never sees half a message. Returns the path.
    pub async fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, SendError> {
        let failed = |e: std::io::Error| SendError::transient(format!("writing to the outbox failed: {e}"));
        let mut dir = tokio::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(&self.dir).await.map_err(failed)?;
        let path = self.dir.join(name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Messages hold codes and links: readable by the service's user alone.
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&partial).await.map_err(failed)?;
        file.write_all(contents).await.map_err(failed)?;
        file.flush().await.map_err(failed)?;
        drop(file);
        tokio::fs::rename(&partial, &path).await.map_err(failed)?;
        Ok(path)
    }
}
