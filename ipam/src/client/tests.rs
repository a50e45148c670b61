//! The client against servers on real sockets: failover, pooling, the watch stream.
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A watch stream whose events arrive split across chunks is read line by line, and one
/// that is not JSON ends the stream (so the caller resumes from its last revision) instead
/// of being skipped as if nothing had changed.
#[tokio::test]
async fn watch_lines_split_across_chunks_are_whole_and_a_broken_one_ends_the_stream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut head = [0u8; 1024];
        let _ = s.read(&mut head).await;
        let chunks = [
            "{\"type\":\"ADDED\",\"rev",
            "ision\":7}\n{\"type\":",
            "\"MODIFIED\",\"revision\":8}\nnot json\n",
        ];
        let mut out = String::from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for c in chunks {
            out += &format!("{:x}\r\n{c}\r\n", c.len());
        }
        for piece in out.as_bytes().chunks(7) {
            s.write_all(piece).await.expect("write");
            s.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The stream stays open: only the broken line may end it.
        tokio::time::sleep(Duration::from_secs(20)).await;
    });
    let client = Client::new(&addr.to_string(), None).expect("client");
    let mut w = client.watch(0, "").await.expect("watch");
    let mut events = Vec::new();
    while let Some(ev) =
        tokio::time::timeout(Duration::from_secs(10), w.next()).await.expect("in time")
    {
        events.push(ev["revision"].as_u64());
    }
    assert_eq!(events, [Some(7), Some(8)], "the broken line ends the stream");
    server.abort();
}
