use super::*;
use figment::Jail;

#[test]
fn layers_apply_in_order() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file("config/default.toml", "[kafka]\nbrokers = \"from-default:1\"\ngroup_id = \"g-default\"\ninput_topic = \"in-default\"\n")?;
        jail.create_file("prod.toml", "[kafka]\ngroup_id = \"g-file\"\ninput_topic = \"in-file\"\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n")?;
        jail.set_env("FRAUDSTREAM__KAFKA__INPUT_TOPIC", "in-env");
        jail.set_env("FRAUDSTREAM__PROCESSING__COMMIT_INTERVAL_MS", "250");
        let flags = Figment::new().merge(Serialized::default("kafka.output_topic", "out-flag"));
        let c = load(Some(Path::new("prod.toml")), flags).map_err(|e| e.to_string())?;
        assert_eq!(c.kafka.brokers, "from-default:1");
        assert_eq!(c.kafka.group_id, "g-file");
        assert_eq!(c.kafka.input_topic, "in-env");
        assert_eq!(c.kafka.output_topic, "out-flag");
        assert_eq!(c.kafka.dlq_topic, "payments-dlq");
        assert_eq!(c.processing.commit_interval_ms, 250);
        assert_eq!(c.kafka.client["security.protocol"], "SASL_SSL");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[kafka]\nbrokerz = \"x\"\n")?;
        let err = load(Some(Path::new("bad.toml")), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
        jail.create_file("bad2.toml", "[procesing]\nx = 1\n")?;
        let err = load(Some(Path::new("bad2.toml")), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("procesing"), "{err}");
        jail.set_env("FRAUDSTREAM__STATE__MAX_ENTITIEZ", "5");
        let err = load(None, Figment::new()).unwrap_err().to_string();
        assert!(err.contains("max_entitiez"), "{err}");
        Ok(())
    });
}

#[test]
fn errors_say_file_line_col_or_variable_or_flag_and_what_was_expected() {
    Jail::expect_with(|jail| {
        let load_err = |file: &str, flags: Figment| {
            load(Some(Path::new(file)), flags).unwrap_err().to_string()
        };
        jail.create_file("syntax.toml", "[kafka]\nbrokers = \"a\"\ngroup_id = = 1\n")?;
        let err = load_err("syntax.toml", Figment::new());
        assert!(
            err.starts_with("invalid configuration: syntax.toml:3:12: "),
            "{err}"
        );
        jail.create_file(
            "type.toml",
            "[processing]\n\n  max_batch_events = \"many\"\n",
        )?;
        let err = load_err("type.toml", Figment::new());
        assert!(
            err.contains("type.toml:3:3: processing.max_batch_events: invalid type: found string \"many\", expected")
                && err.contains("usize"),
            "{err}"
        );
        jail.create_file("unknown.toml", "[kafka]\nbrokerz = \"x\"\n")?;
        let err = load_err("unknown.toml", Figment::new());
        assert!(
            err.contains("unknown.toml:2:1: kafka.brokerz: unknown field"),
            "{err}"
        );
        jail.create_file(
            "range.toml",
            "[state]\nmax_entities = 0\n[metrics]\nmax_connections = 0\n",
        )?;
        let err = load_err("range.toml", Figment::new());
        assert!(
            err.contains("range.toml:2:1: state.max_entities: expected at least 1"),
            "{err}"
        );
        assert!(
            err.contains("range.toml:4:1: metrics.max_connections: expected 1 to 100000"),
            "{err}"
        );
        jail.set_env("FRAUDSTREAM__METRICS__WRITE_TIMEOUT_MS", "0");
        let flags = Figment::new().merge(Serialized::default("kafka.input_topic", ""));
        let err = load_err("range.toml", flags);
        assert!(err.contains("environment variable FRAUDSTREAM__METRICS__WRITE_TIMEOUT_MS: expected 1 to 86400000 ms"), "{err}");
        assert!(
            err.contains("flag for kafka.input_topic: expected a non-empty name"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn min_event_time_and_base_currency_are_checked() {
    Jail::expect_with(|jail| {
        let c = load(None, Figment::new()).map_err(|e| e.to_string())?;
        assert_eq!(
            crate::source::event::Limits::from_config(&c.processing).min_event_time_ms,
            946_684_800_000
        );
        jail.create_file("a.toml", "[processing]\nmin_event_time = \"2018-04-01\"\n")?;
        let c = load(Some(Path::new("a.toml")), Figment::new()).map_err(|e| e.to_string())?;
        assert_eq!(
            crate::source::event::Limits::from_config(&c.processing).min_event_time_ms,
            1_522_540_800_000
        );
        jail.create_file("b.toml", "[processing]\nmin_event_time = \"2018-04-31\"\n")?;
        let err = load(Some(Path::new("b.toml")), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("processing.min_event_time: expected RFC 3339")
                && err.contains("'2018-04-31'"),
            "{err}"
        );
        jail.create_file("c.toml", "[currency]\nbase = \"EURO\"\n")?;
        let err = load(Some(Path::new("c.toml")), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("currency.base: expected an ISO 4217 currency code, not 'EURO'"),
            "{err}"
        );
        jail.set_env("FRAUDSTREAM__CURRENCY__BASE", "usd");
        let c = load(None, Figment::new()).map_err(|e| e.to_string())?;
        assert_eq!(
            crate::source::currency::RatesSource::from_config(&c.currency)
                .map_err(|e| e.to_string())?
                .base
                .code(),
            "USD"
        );
        Ok(())
    });
}

/// Each key with a value that used to crash or stall the processor, or
/// that can never work, and the line of the check that refuses it.
#[test]
fn every_value_out_of_range_is_refused_with_its_key() {
    let cases = [
        ("kafka", "brokers", "\"\""),
        ("kafka", "group_id", "\" \""),
        ("kafka", "input_topic", "\"\""),
        ("kafka", "output_topic", "\"\""),
        ("kafka", "dlq_topic", "\"\""),
        ("kafka", "checkpoint_topic", "\"\""),
        ("processing", "max_batch_events", "0"),
        ("processing", "max_message_bytes", "0"),
        ("processing", "max_amount", "nan"),
        ("processing", "max_amount", "inf"),
        ("processing", "max_amount", "-1.0"),
        ("processing", "max_future_skew_secs", "-1"),
        ("processing", "kafka_timeout_ms", "0"),
        // Allocated up front per partition: this much aborted the process.
        ("processing", "dedup_window_events", "1000000000000000"),
        ("state", "max_entities", "0"),
        ("state", "max_events_per_entity", "0"),
        // More than a semaphore holds panicked.
        ("metrics", "max_connections", "4611686018427387904"),
        ("metrics", "read_timeout_ms", "0"),
        ("metrics", "read_timeout_ms", "86400001"),
        ("metrics", "write_timeout_ms", "0"),
        ("log", "level", "\"fraudstream=loud=yes\""),
        // Allocated at start: ~600 bytes each.
        ("api", "replay_entries", "1000001"),
        ("api", "max_connections", "0"),
        ("api", "read_timeout_ms", "0"),
        ("api", "body_timeout_ms", "0"),
        ("api", "write_timeout_ms", "86400001"),
        ("api", "tls_key", "\"key.pem\""),
        ("api", "tls_client_ca", "\"ca.pem\""),
    ];
    for (section, key, value) in cases {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", &format!("# bad\n[{section}]\n{key} = {value}\n"))?;
            let err = load(Some(Path::new("c.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            let at = format!("c.toml:3:1: {section}.{key}: expected ");
            assert!(err.contains(&at), "{section}.{key} = {value}: {err}");
            Ok(())
        });
    }
    assert!(Config::default().problems().is_empty());
    assert!(load_from(Path::new("config/default.toml"), None, Figment::new()).is_ok());
}

/// The API decides on the account's worker: terminal repartitioning and
/// passthrough do not, so the combination is refused, saying what to do.
#[test]
fn the_api_with_terminal_repartitioning_or_passthrough_is_refused() {
    let cases = [
        (
            "[kafka]\nterminal_topic = \"by-terminal\"\n",
            "clear api.addr or kafka.terminal_topic",
        ),
        (
            "[processing]\nmode = \"passthrough\"\n",
            "clear api.addr or set processing.mode = \"decide\"",
        ),
    ];
    for (other, what_to_do) in cases {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", &format!("[api]\naddr = \"127.0.0.1:0\"\n{other}"))?;
            let err = load(Some(Path::new("c.toml")), Figment::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("c.toml:2:1: api.addr: expected empty while")
                    && err.contains(what_to_do),
                "{err}"
            );
            jail.create_file("c.toml", other)?;
            assert!(load(Some(Path::new("c.toml")), Figment::new()).is_ok());
            Ok(())
        });
    }
}

#[test]
fn missing_config_file_is_an_error() {
    let err = load(Some(Path::new("/nonexistent/x.toml")), Figment::new()).unwrap_err();
    assert!(err.to_string().contains("does not exist"));
}
