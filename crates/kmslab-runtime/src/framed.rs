//! Reading and writing wire-protocol v1 frames on tokio streams.
//!
//! [`read_message`] reads the 12-byte header first and lets the core check it, so a bad
//! magic or an over-long length is refused before the body is read or any buffer grows;
//! the body buffer never exceeds `MAX_FRAME_LEN`.

use kmslab_core::wire::{self, DecodeError, Frame, FrameKey, HEADER_LEN, MAX_FRAME_LEN, Message, Nonce};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame ({got} of {needed} bytes)")]
    ClosedMidFrame {
        /// Bytes received.
        got: usize,
        /// Bytes the frame needed.
        needed: usize,
    },
    /// The bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The message could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(#[from] wire::EncodeError),
    /// An I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one message. `Ok(None)` when the peer closed cleanly between frames.
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Result<Option<Message>, FrameError> {
    read_message_with(reader, buf, None).await
}

/// Reads one message; with `key` (`--psk`) it must carry a valid MAC, without it none.
pub async fn read_message_with<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    key: Option<&FrameKey>,
) -> Result<Option<Message>, FrameError> {
    Ok(read_frame_with(reader, buf, key).await?.map(|frame| frame.message))
}

/// As [`read_message_with`], with the frame's nonce (`FLAG_NONCE`, under the MAC).
pub async fn read_frame_with<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    key: Option<&FrameKey>,
) -> Result<Option<Frame>, FrameError> {
    buf.clear();
    buf.resize(HEADER_LEN, 0);
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut buf[got..HEADER_LEN]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::ClosedMidFrame { got, needed: HEADER_LEN }) };
        }
        got += n;
        // Check what we have so far: garbage is refused without waiting for 12 bytes.
        match wire::decode_header(&buf[..got]) {
            Ok(_) | Err(DecodeError::Incomplete { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let header = wire::decode_header(&buf[..HEADER_LEN])?;
    let total = header.frame_len();
    debug_assert!(total <= MAX_FRAME_LEN);
    buf.resize(total, 0);
    let mut at = HEADER_LEN;
    while at < total {
        let n = reader.read(&mut buf[at..total]).await?;
        if n == 0 {
            return Err(FrameError::ClosedMidFrame { got: at, needed: total });
        }
        at += n;
    }
    let (frame, _) = wire::decode_frame(&buf[..total], key)?;
    Ok(Some(frame))
}

/// Encodes and writes one message, then flushes.
pub async fn write_message<W: AsyncWrite + Unpin>(writer: &mut W, msg: &Message, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    write_message_with(writer, msg, buf, None).await
}

/// Encodes (with a MAC when `key` is given) and writes one message, then flushes.
pub async fn write_message_with<W: AsyncWrite + Unpin>(
    writer: &mut W,
    msg: &Message,
    buf: &mut Vec<u8>,
    key: Option<&FrameKey>,
) -> Result<(), FrameError> {
    write_frame_with(writer, msg, buf, key, None).await
}

/// As [`write_message_with`]; with a key and a `nonce`, the frame carries the nonce under
/// its MAC (a request's fresh one, or the echo of the request an answer answers).
pub async fn write_frame_with<W: AsyncWrite + Unpin>(
    writer: &mut W,
    msg: &Message,
    buf: &mut Vec<u8>,
    key: Option<&FrameKey>,
    nonce: Option<&Nonce>,
) -> Result<(), FrameError> {
    buf.clear();
    wire::encode_frame(msg, key, nonce, buf)?;
    writer.write_all(buf).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmslab_core::HResult;
    use kmslab_core::wire::ErrorFrame;

    #[tokio::test]
    async fn frames_cross_a_duplex_pipe_and_garbage_is_refused_early() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let msg = Message::Error(ErrorFrame { hresult: HResult::KEY_GROUP_MISMATCH, cmid: kmslab_core::Uuid::nil(), message: "x".into() });
        let mut buf = Vec::new();
        write_message(&mut a, &msg, &mut buf).await.unwrap();
        write_message(&mut a, &msg, &mut buf).await.unwrap();
        let mut rbuf = Vec::new();
        assert_eq!(read_message(&mut b, &mut rbuf).await.unwrap(), Some(msg.clone()));
        assert_eq!(read_message(&mut b, &mut rbuf).await.unwrap(), Some(msg));
        a.write_all(b"GET").await.unwrap();
        let err = read_message(&mut b, &mut rbuf).await.unwrap_err();
        assert!(matches!(err, FrameError::Decode(DecodeError::BadMagic(_))), "{err}");
        drop(a);
        assert!(read_message(&mut b, &mut rbuf).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_from_the_header() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"KMSL\x01\x01\0\0\xff\xff\xff\x7f").await.unwrap();
        let mut rbuf = Vec::new();
        let err = read_message(&mut b, &mut rbuf).await.unwrap_err();
        assert!(matches!(err, FrameError::Decode(DecodeError::TooLong { .. })), "{err}");
        assert!(rbuf.capacity() <= 64, "no allocation for the announced length");
    }
}
