//! Generic JSON mapped by a config mapping. The body is parsed with a few
//! fixed mappings; an input holding a NUL byte is also split there into a
//! mapping (YAML, as in the config's `generic:` section) and a body, so the
//! mapping compiler and arbitrary JSON pointers are fuzzed too.
#![no_main]

use std::sync::OnceLock;

use alertgate::ingest::IngestContext;
use alertgate::ingest::generic::{Mapping, MappingSpec};
use libfuzzer_sys::fuzz_target;

const SPECS: &[&str] = &[
    // examples/alertgate.yml's uptime-kuma mapping, with every field.
    r#"
alerts: /items
labels: {alertname: /monitor/name, instance: /monitor/url}
labels_from: /tags
static_labels: {tool: kuma}
annotations: {summary: /msg}
annotations_from: /details
status: {field: /status, firing: ["0", "down"], resolved: ["1", "up"]}
fingerprint: /monitor/id
starts_at: /time
ends_at: /end
generator_url: /monitor/url
"#,
    // The body itself is the alert (or an array of alerts); labels only.
    "labels_from: /labels\nannotations_from: /annotations\nstarts_at: /startsAt\nends_at: /endsAt\n",
    // Identity from a fingerprint alone; status without firing values.
    "fingerprint: /id\nstatus: {field: /state, resolved: [ok]}\nannotations: {x: ''}\n",
];

fn mappings() -> &'static [Mapping] {
    static M: OnceLock<Vec<Mapping>> = OnceLock::new();
    M.get_or_init(|| {
        SPECS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let spec: MappingSpec = alertgate::yaml::from_str(s).expect("fixed mapping parses");
                Mapping::compile(&format!("m{i}"), spec).expect("fixed mapping compiles")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let ctx = IngestContext {
        now: jiff::Timestamp::from_second(1_795_000_000).unwrap(),
        resolve_timeout: jiff::SignedDuration::from_mins(5),
    };
    let text = String::from_utf8_lossy(data);
    for m in mappings() {
        let _ = m.parse(&text, &ctx);
    }
    if let Some((spec, body)) = text.split_once('\0')
        && let Ok(spec) = alertgate::yaml::from_str::<MappingSpec>(spec)
        && let Ok(m) = Mapping::compile("fuzz", spec)
    {
        let _ = m.parse(body, &ctx);
    }
});
