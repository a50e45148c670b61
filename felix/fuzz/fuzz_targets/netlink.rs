//! Any bytes as a datagram from the kernel: splitting it into messages and reading each as a
//! route, a nexthop object, a link or an address never panics, never reads past a message, and every
//! message the splitter yields lies inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tartan_felix::routes::wire;

fuzz_target!(|data: &[u8]| {
    let mut seen = 0usize;
    for frame in wire::frames(data) {
        seen += frame.body.len();
        assert!(seen <= data.len(), "frames yield more bytes than the datagram has");
        let _ = frame.code();
        let _ = wire::parse_route(frame.body);
        let _ = wire::parse_nexthop(frame.body);
        let _ = wire::parse_link(frame.body);
        let _ = wire::parse_address(frame.body);
    }
    // The parsers also take any body directly (a message the splitter cut differently).
    let _ = wire::parse_route(data);
    let _ = wire::parse_nexthop(data);
    let _ = wire::parse_link(data);
    let _ = wire::parse_address(data);
});
