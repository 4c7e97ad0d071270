//! Fault specs: every documented spelling parses, and bad ones are refused by name.

use super::*;

#[test]
fn notification_faults_parse() {
    assert!(matches!(
        parse("drop@2").unwrap(),
        Fault::Notification {
            target: NotifyTarget::Seq(2),
            fault: NotifyFault::Drop,
            ..
        }
    ));
    assert!(matches!(
        parse("delay@2,ms=500").unwrap(),
        Fault::Notification { fault: NotifyFault::Delay(d), .. } if d == Duration::from_millis(500)
    ));
    let f = parse("fail@1,code=500,subcode=8510,message=no answer").unwrap();
    assert!(matches!(
        f,
        Fault::Notification { fault: NotifyFault::Fail { code: 500, subcode: 8510, ref message }, .. } if message == "no answer"
    ));
    let f = parse("drop@updated:/communications/calls/{id}/participants").unwrap();
    let Fault::Notification {
        target: NotifyTarget::Kind { change, template },
        ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(
        (change.as_str(), template.as_str()),
        ("updated", "/communications/calls/{id}/participants")
    );
    assert_eq!(parse("duplicate@1").unwrap().spec(), "duplicate@1");
}

#[test]
fn response_faults_parse() {
    let f = parse("429@POST /communications/calls/{id}/participants/invite,nth=1,retry-after=1").unwrap();
    let Fault::Response { target, fault, .. } = f else {
        panic!()
    };
    assert_eq!(target.method, "POST");
    assert_eq!(target.template, "/communications/calls/{id}/participants/invite");
    assert_eq!(target.occurrence, Occurrence::Nth(1));
    assert_eq!(
        fault,
        ResponseFault::Status {
            status: 429,
            retry_after: Some(1)
        }
    );
    let f = parse("503@GET /app/calls/{id},every=3").unwrap();
    let Fault::Response { target, .. } = f else { panic!() };
    assert_eq!(target.template, "/communications/calls/{id}", "/app is /communications");
    assert_eq!(target.occurrence, Occurrence::Every(3));
    assert!(Occurrence::Every(3).hits(6) && !Occurrence::Every(3).hits(4));
    assert!(matches!(
        parse("delay@GET /communications/calls/{id},ms=200").unwrap(),
        Fault::Response {
            fault: ResponseFault::Delay(_),
            ..
        }
    ));
}

#[test]
fn bad_specs_are_refused_by_name() {
    for (spec, needle) in [
        ("drop", "KIND@TARGET"),
        ("explode@1", "no notification fault"),
        ("delay@1", "ms=N"),
        ("delay@1,ms=soon", "must be a number"),
        ("drop@1,x=1", "unknown parameter"),
        ("418@GET /communications/calls/{id}", "no response fault"),
        ("429@GET /x,nth=1,every=2", "not both"),
        ("drop@updated", "changeType:template"),
    ] {
        let e = parse(spec).unwrap_err();
        assert!(e.to_string().contains(needle), "{spec}: {e}");
        assert!(e.to_string().contains(spec), "{e}");
    }
}
