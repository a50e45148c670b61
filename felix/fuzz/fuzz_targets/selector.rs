//! Any text as a Calico selector: parsing never panics; a selector that parses prints back to
//! text that (within the length limit) parses to the same selector, which matches the same
//! label sets.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tartan_ipam::resources::Selector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(selector) = Selector::parse(text) else { return };
    let printed = selector.to_string();
    // Printing spells things out (`a == 'x'` for `a=='x'`): past the length limit the printed
    // text is refused as any other would be.
    if printed.chars().count() > tartan_ipam::resources::selector::MAX_SELECTOR_LEN {
        return;
    }
    let again = Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, selector, "{text:?} printed as {printed:?}");
    // A few label sets built from the text's own words, so that matches are exercised.
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut labels = BTreeMap::new();
    for pair in words.chunks(2) {
        labels.insert(pair[0].to_string(), pair.get(1).unwrap_or(&"").to_string());
        assert_eq!(selector.matches(&labels), again.matches(&labels));
    }
});
