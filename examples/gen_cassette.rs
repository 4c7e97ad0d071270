//! Writes a generated cassette as interchange JSON, with the criterion benches'
//! generators (`benches/common`), for `scripts/bench.sh`'s large-cassette workload:
//!
//! ```text
//! cargo run --release --example gen_cassette -- invites|polls|spread|burst N FILE
//! ```
//!
//! `invites N`: N copies of the bundled invite, each with its 2 notifications and ids
//! of its own (cassette `bench-invites-N`); `polls N`: N operation polls of one call;
//! `spread N`: N exchanges over 27 call-API actions in both versions; `burst N`: one
//! invite followed by N notifications.

#[path = "../benches/common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, n, file] = args.as_slice() else {
        panic!("usage: gen_cassette invites|polls|spread|burst N FILE");
    };
    let n: usize = n.parse().expect("N is a number of exchanges");
    let cassette = match kind.as_str() {
        "invites" => common::invites(n),
        "polls" => common::polls(n),
        "spread" => common::spread(n),
        "burst" => common::burst(n),
        other => panic!("unknown layout `{other}`: invites, polls, spread or burst"),
    };
    let path = std::path::Path::new(file);
    graphvcr::cassette::json::write_file(&cassette, path).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
    println!("{} ({} events) -> {file}", cassette.meta.name, cassette.events.len());
}
