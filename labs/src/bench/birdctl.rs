//! A client of BIRD's control socket, the protocol `birdc` speaks: one command line in, reply
//! lines out, each `CODE-text` (more follows) or `CODE text` (last of its code), continuation
//! lines starting with a space; a reply ends with a code of class 0 (done), 8 or 9 (errors).
//! The benchmark polls the monitor this way every few milliseconds, far cheaper than starting
//! `birdc` each time.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
pub struct BirdCtl {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl BirdCtl {
    /// Connects and reads BIRD's greeting.
    pub fn connect(path: &Path) -> io::Result<BirdCtl> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        let mut ctl = BirdCtl { reader: BufReader::new(stream), writer };
        ctl.reply()?;
        Ok(ctl)
    }

    /// Runs one command; returns the reply's text lines (codes removed).
    pub fn command(&mut self, cmd: &str) -> io::Result<String> {
        self.writer.write_all(cmd.as_bytes())?;
        self.writer.write_all(b"\n")?;
        self.reply()
    }

    fn reply(&mut self) -> io::Result<String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "BIRD closed the socket"));
            }
            let line = line.trim_end_matches('\n');
            let bytes = line.as_bytes();
            let coded = bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit);
            if !coded {
                text.push_str(line.strip_prefix(' ').unwrap_or(line));
                text.push('\n');
                continue;
            }
            text.push_str(&line[5..]);
            text.push('\n');
            if bytes[4] == b' ' && matches!(bytes[0], b'0' | b'8' | b'9') {
                if matches!(bytes[0], b'8' | b'9') {
                    return Err(io::Error::other(format!("BIRD: {}", text.trim())));
                }
                return Ok(text);
            }
        }
    }
}

/// What `show protocols all NAME` says about a BGP protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolInfo {
    pub established: bool,
    /// When the protocol last changed state, as printed with `timeformat protocol "%s"`.
    pub since_unix: Option<u64>,
    pub imported: u64,
    pub exported: u64,
}

pub fn parse_protocol(text: &str, name: &str) -> ProtocolInfo {
    let mut info = ProtocolInfo::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&name) && words.len() >= 5 {
            info.since_unix = words[4].parse().ok();
        }
        let t = line.trim();
        if let Some(state) = t.strip_prefix("BGP state:") {
            info.established = state.trim() == "Established";
        }
        if let Some(routes) = t.strip_prefix("Routes:") {
            // "1000000 imported, 0 exported, 1000000 preferred" (BIRD 2), with a "filtered"
            // term when the channel keeps filtered routes.
            for part in routes.split(',') {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(what)) = (w.next(), w.next()) {
                    let n = n.parse().unwrap_or(0);
                    match what {
                        "imported" => info.imported = n,
                        "exported" => info.exported = n,
                        _ => {}
                    }
                }
            }
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_details_parse() {
        let text = "Name       Proto      Table      State  Since         Info\n\
                    target     BGP        ---        up     1795258042    Established\n\
                    BGP state:          Established\n\
                    \x20 Channel ipv4\n\
                    \x20   Routes:         1000000 imported, 0 exported, 1000000 preferred\n";
        let p = parse_protocol(text, "target");
        assert!(p.established);
        assert_eq!(p.since_unix, Some(1_795_258_042));
        assert_eq!((p.imported, p.exported), (1_000_000, 0));
    }
}
