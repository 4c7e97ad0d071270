//! The seed's four invite cassettes, compiled into the binary: `graphvcr demo` and
//! `graphvcr replay --cassette invite-one-participant` work from any directory. A file
//! of the same name under `--cassettes` takes precedence.

use crate::cassette::{json, Cassette, CassetteError};

/// (name, JSON) of each bundled cassette.
pub const CASSETTES: [(&str, &str); 4] = [
    (
        "invite-one-participant",
        include_str!("../cassettes/invite-one-participant.json"),
    ),
    (
        "invite-multiple-participants",
        include_str!("../cassettes/invite-multiple-participants.json"),
    ),
    (
        "invite-replace-p2p-call",
        include_str!("../cassettes/invite-replace-p2p-call.json"),
    ),
    (
        "invite-pstn-participant",
        include_str!("../cassettes/invite-pstn-participant.json"),
    ),
];

/// The bundled cassette `name`, if there is one. Used only when the store has no
/// cassette of that name (a file under `--cassettes` imported at start wins).
pub fn cassette(name: &str) -> Option<Result<Cassette, CassetteError>> {
    let (_, text) = CASSETTES.iter().find(|(n, _)| *n == name)?;
    Some(json::parse(text.as_bytes(), &format!("(bundled) {name}.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_cassette_parses_under_its_name() {
        for (name, _) in CASSETTES {
            let c = cassette(name).unwrap().unwrap();
            assert_eq!(c.meta.name, name);
        }
        assert!(cassette("nope").is_none());
    }
}
