//! Server-Sent Events framing (the WHATWG `text/event-stream` format): bytes in as they arrive,
//! whole frames out.

use std::time::Duration;

/// One dispatched event: its `id`, `event` name (`message` when the server named none) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads a stream in chunks split anywhere (even inside a line or a UTF-8 character).
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    /// Each `data:` line followed by `\n`; an empty buffer dispatches nothing.
    data: String,
    /// The server's reconnection delay (`retry:`), once it sent one.
    pub retry: Option<Duration>,
}

impl SseParser {
    /// The frames that `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::take(&mut self.after_cr);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.pending);
                    frames.extend(self.line(&String::from_utf8_lossy(&line)));
                }
                _ => self.pending.push(byte),
            }
        }
        frames
    }

    /// For a new connection: what the old one left unfinished is dropped, the retry hint kept.
    pub fn reconnected(&mut self) {
        *self = SseParser {
            retry: self.retry,
            ..SseParser::default()
        };
    }

    fn line(&mut self, line: &str) -> Option<SseFrame> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            // A comment: the server's keep-alive.
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" => {
                if let Ok(millis) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseFrame> {
        let event = self.event.take();
        let id = self.id.take();
        let mut data = std::mem::take(&mut self.data);
        data.pop()?;
        Some(SseFrame {
            id,
            event: event.unwrap_or_else(|| "message".to_owned()),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> (Vec<SseFrame>, SseParser) {
        let mut parser = SseParser::default();
        let frames = chunks.iter().flat_map(|chunk| parser.push(chunk)).collect();
        (frames, parser)
    }

    #[test]
    fn frames_survive_any_split_and_every_line_ending() {
        let stream = "retry: 2000\n\n: keep-alive\r\nid: 7\r\nevent: resource.ready\r\ndata: {\"a\":\r\ndata: \"\u{e9}\"}\r\n\r\nevent:end\rdata:{}\r\r";
        let expected = vec![
            SseFrame {
                id: Some("7".into()),
                event: "resource.ready".into(),
                data: "{\"a\":\n\"\u{e9}\"}".into(),
            },
            SseFrame {
                id: None,
                event: "end".into(),
                data: "{}".into(),
            },
        ];
        let bytes = stream.as_bytes();
        for split in 0..bytes.len() {
            let (parsed, parser) = frames(&[&bytes[..split], &bytes[split..]]);
            assert_eq!(parsed, expected, "split at {split}");
            assert_eq!(parser.retry, Some(Duration::from_millis(2000)));
        }
    }

    #[test]
    fn a_frame_without_data_dispatches_nothing() {
        let (parsed, _) = frames(&[b"event: ping\nid: 3\n\ndata:\n\n"]);
        assert_eq!(
            parsed,
            vec![SseFrame {
                id: None,
                event: "message".into(),
                data: String::new(),
            }]
        );
    }
}
