//! Wire frames for every peer protocol: `[version: u8][length: u32 BE][JSON body]`.
//!
//! The length is checked against the protocol's cap *before* anything is allocated, and the
//! version byte must be one this build speaks. A frame that breaks either rule, or whose body is
//! not the expected message, is an error for the caller to close the connection with; nothing
//! a peer sends can make the reader panic or allocate more than the cap.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The frame format version this build writes and accepts.
pub const VERSION: u8 = 1;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("the peer closed the stream")]
    Closed,
    #[error("frame version {0} is not supported (this build speaks {VERSION})")]
    Version(u8),
    #[error("frame of {len} bytes is over the {cap}-byte limit")]
    TooLarge { len: u64, cap: usize },
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one frame holding `msg`.
pub async fn write<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    cap: usize,
) -> Result<(), FrameError> {
    let mut buf = Vec::new();
    encode(&mut buf, msg, cap)?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Appends one frame holding `msg` to `out` (for a writer that batches frames and other bytes
/// into one write); `out` is unchanged when the message is over `cap`.
pub fn encode<T: Serialize>(out: &mut Vec<u8>, msg: &T, cap: usize) -> Result<(), FrameError> {
    let start = out.len();
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    let body = serde_json::to_writer(&mut *out, msg);
    let len = out.len() - start - 5;
    if let Err(e) = body {
        out.truncate(start);
        return Err(e.into());
    }
    if len > cap {
        out.truncate(start);
        return Err(FrameError::TooLarge {
            len: len as u64,
            cap,
        });
    }
    out[start + 1..start + 5].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Reads one frame and decodes it as a `T`; at most `cap` body bytes are accepted.
pub async fn read<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    cap: usize,
) -> Result<T, FrameError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    decode_head(head, cap)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            e.into()
        }
    })?;
    Ok(serde_json::from_slice(&body)?)
}

fn decode_head(head: [u8; 5], cap: usize) -> Result<(), FrameError> {
    if head[0] != VERSION {
        return Err(FrameError::Version(head[0]));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as u64;
    if len > cap as u64 {
        return Err(FrameError::TooLarge { len, cap });
    }
    Ok(())
}

/// Decodes a whole buffer as one frame (for tests and fuzzing of the decoder).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], cap: usize) -> Result<T, FrameError> {
    let head: [u8; 5] = bytes
        .get(..5)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Closed)?;
    decode_head(head, cap)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let body = bytes.get(5..5 + len).ok_or(FrameError::Closed)?;
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Msg {
        a: u32,
        b: String,
    }

    #[tokio::test]
    async fn round_trip_and_limits() {
        let m = Msg {
            a: 7,
            b: "ok".into(),
        };
        let mut buf = Vec::new();
        write(&mut buf, &m, 1024).await.unwrap();
        let back: Msg = read(&mut buf.as_slice(), 1024).await.unwrap();
        assert_eq!(back, m);
        // Oversized: refused from the header alone.
        let mut big = vec![VERSION];
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        let e = read::<_, Msg>(&mut big.as_slice(), 1024).await.unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { .. }), "{e}");
        // Unknown version, truncated body, garbage body.
        let mut v2 = buf.clone();
        v2[0] = 2;
        assert!(matches!(
            decode::<Msg>(&v2, 1024),
            Err(FrameError::Version(2))
        ));
        assert!(matches!(
            decode::<Msg>(&buf[..buf.len() - 1], 1024),
            Err(FrameError::Closed)
        ));
        let mut junk = vec![VERSION, 0, 0, 0, 3];
        junk.extend_from_slice(b"{]x");
        assert!(matches!(
            decode::<Msg>(&junk, 1024),
            Err(FrameError::Malformed(_))
        ));
    }

    /// Property: no byte string makes the decoder panic, and what it accepts is within the cap.
    #[test]
    fn decoder_never_panics_on_arbitrary_input() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = {
            let body = serde_json::to_vec(&Msg {
                a: 1,
                b: "x".into(),
            })
            .unwrap();
            let mut f = vec![VERSION];
            f.extend_from_slice(&(body.len() as u32).to_be_bytes());
            f.extend_from_slice(&body);
            f
        };
        for _ in 0..20_000 {
            let mut bytes = if next() % 2 == 0 {
                valid.clone()
            } else {
                Vec::new()
            };
            let n = (next() % 40) as usize;
            for _ in 0..n {
                let r = next();
                match r % 3 {
                    0 if !bytes.is_empty() => {
                        let i = (r >> 8) as usize % bytes.len();
                        bytes[i] = (r >> 16) as u8;
                    }
                    1 => bytes.push((r >> 8) as u8),
                    _ => {
                        bytes.truncate((r >> 8) as usize % (bytes.len() + 1));
                    }
                }
            }
            let _ = decode::<Msg>(&bytes, 64);
            let _ = decode::<serde_json::Value>(&bytes, 64);
        }
    }
}
