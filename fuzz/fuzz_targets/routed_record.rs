//! The terminal topic's record codec: an encoded event or label decodes to
//! what was encoded, and no byte string makes the decoder panic.
#![no_main]

use fraudstream::pipeline::terminal::{encode_event, encode_label, RoutedRecord};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// Arbitrary bytes, decoded for a feature set of `n` features.
    Bytes { n: u16, bytes: &'a [u8] },
    /// An event to round-trip.
    Event { ts: i64, features: Vec<f64>, payload: &'a [u8] },
    /// A label to round-trip.
    Label { fraud: bool, event_id: &'a str },
}

fuzz_target!(|input: Input<'_>| {
    let mut buf = Vec::new();
    match input {
        Input::Bytes { n, bytes } => {
            if let Ok(RoutedRecord::Event { features, .. }) = RoutedRecord::decode(bytes, n.into()) {
                assert_eq!(features.len(), 8 * usize::from(n));
                let mut out = vec![0.0; n.into()];
                RoutedRecord::read_features(features, &mut out);
            }
        }
        Input::Event { ts, features, payload } => {
            encode_event(ts, &features, payload, &mut buf);
            let decoded = RoutedRecord::decode(&buf, features.len());
            if features.len() > usize::from(u16::MAX) {
                assert!(decoded.is_err(), "a count that does not fit must not decode");
                return;
            }
            let Ok(RoutedRecord::Event { input_ts_ms, features: bytes, payload: p }) = decoded
            else {
                panic!("event did not round-trip: {decoded:?}");
            };
            assert_eq!((input_ts_ms, p), (ts, payload));
            let mut out = vec![0.0; features.len()];
            RoutedRecord::read_features(bytes, &mut out);
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&features));
        }
        Input::Label { fraud, event_id } => {
            encode_label(event_id, fraud, &mut buf);
            let decoded = RoutedRecord::decode(&buf, 0);
            assert_eq!(decoded, Ok(RoutedRecord::Label { fraud, event_id }));
        }
    }
});
