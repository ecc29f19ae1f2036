//! No container engine runs on these machines, so the deployment files are
//! checked statically: `compose.yaml` parses, and every service command
//! names real flags of our binaries (the same clap definitions the binaries
//! parse), and every `RVC_` variable it sets is one they read.

use std::collections::HashSet;

use clap::{CommandFactory, Parser};
use serde_yaml::Value;

/// `compose.yaml` at the repository root, parsed, its merge keys resolved.
fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../compose.yaml"))
        .expect("compose.yaml at the repository root");
    let mut doc: Value = serde_yaml::from_str(&text).expect("compose.yaml is valid YAML");
    doc.apply_merge().expect("merge keys resolve");
    doc
}

fn flags_and_env(cmd: clap::Command) -> (HashSet<String>, HashSet<String>) {
    let mut flags = HashSet::new();
    let mut env = HashSet::new();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            flags.insert(format!("--{long}"));
        }
        if let Some(var) = arg.get_env() {
            env.insert(var.to_string_lossy().into_owned());
        }
    }
    (flags, env)
}

#[test]
fn compose_services_use_real_flags_and_settings() {
    let _panics = testkit::panics::guard();
    let doc = compose();
    let (matcher_flags, matcher_env) = flags_and_env(matcher::Config::command());
    let (signaller_flags, signaller_env) = flags_and_env(signaller::config::Config::command());

    let services = doc["services"].as_mapping().expect("services");
    let mut checked = 0;
    let mut roles = HashSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let Some(command) = service["command"].as_sequence() else {
            continue;
        };
        let words: Vec<&str> = command.iter().map(|w| w.as_str().unwrap()).collect();
        let (flags, env) = match words[0] {
            "matcher" => (&matcher_flags, &matcher_env),
            "signaller" => (&signaller_flags, &signaller_env),
            _ => continue,
        };
        for word in &words[1..] {
            if word.starts_with("--") {
                assert!(
                    flags.contains(*word),
                    "{name}: {word} is not a flag of {}",
                    words[0]
                );
            }
        }
        if let Some(i) = words.iter().position(|w| *w == "--role") {
            roles.insert(words[i + 1].to_string());
            assert!(
                ["gateway", "worker", "all"].contains(&words[i + 1]),
                "{name}: bad role"
            );
        }
        if let Some(vars) = service["environment"].as_mapping() {
            for (var, _) in vars {
                let var = var.as_str().unwrap();
                if var.starts_with("RVC_") {
                    assert!(
                        env.contains(var),
                        "{name}: {var} is not read by {}",
                        words[0]
                    );
                }
            }
        }
        let health = &service["healthcheck"]["test"];
        if words[0] == "signaller" || roles.contains("gateway") && words.contains(&"gateway") {
            let test: Vec<&str> = health
                .as_sequence()
                .unwrap_or_else(|| panic!("{name}: a health check"))
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            assert!(
                test.iter().any(|w| w.ends_with("/readyz")),
                "{name}: health check on /readyz"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "gateways, worker and signallers are defined");
    assert!(roles.contains("gateway") && roles.contains("worker"));
    assert!(services.contains_key("redis") && services.contains_key("loadbalancer"));

    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("Dockerfile");
    assert!(dockerfile.contains("USER rvc"), "runs as a non-root user");
    assert!(dockerfile.contains("-p matcher -p signaller"));
}

/// The `--flag` that reads `var` from the environment in `cmd`, if any.
fn flag_for_env(cmd: &clap::Command, var: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == var))
        .and_then(|a| a.get_long())
        .map(|l| format!("--{l}"))
}

#[test]
fn compose_services_values_parse_with_the_real_configuration() {
    let _panics = testkit::panics::guard();
    let doc = compose();
    let mut parsed = 0;
    for (name, service) in doc["services"].as_mapping().expect("services") {
        let name = name.as_str().unwrap();
        let Some(command) = service["command"].as_sequence() else {
            continue;
        };
        let words: Vec<String> = command
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        let cmd = match words[0].as_str() {
            "matcher" => matcher::Config::command(),
            "signaller" => signaller::config::Config::command(),
            _ => continue,
        };
        // The command's flags, then each RVC_ variable as the flag it
        // stands for: values and flags go through the same parser the
        // binary runs. `${VAR:?..}` (required from the operator) stands for
        // a valid 40-byte value.
        let mut args = words.clone();
        if let Some(vars) = service["environment"].as_mapping() {
            for (var, value) in vars {
                let var = var.as_str().unwrap();
                let Some(flag) = flag_for_env(&cmd, var) else {
                    continue;
                };
                let value = match value {
                    Value::String(v) if v.starts_with("${") => "x".repeat(40),
                    Value::String(v) => v.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => panic!("{name}: {var} = {other:?}"),
                };
                args.push(flag);
                args.push(value);
            }
        }
        let result = match words[0].as_str() {
            "matcher" => matcher::Config::try_parse_from(&args).map(|c| {
                assert!(
                    c.shared.redis_url.starts_with("redis://"),
                    "{name}: {}",
                    c.shared.redis_url
                );
                if let Some(secret) = &c.shared.ticket_secret {
                    service::ticket_secret::check_configured(secret)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                if let Some(i) = words.iter().position(|w| w == "--role") {
                    assert_eq!(
                        format!("{:?}", c.role).to_lowercase(),
                        words[i + 1],
                        "{name}: role"
                    );
                }
            }),
            _ => signaller::config::Config::try_parse_from(&args).map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("{name}: {args:?} does not parse:\n{e}"));
        parsed += 1;
    }
    assert!(parsed >= 5, "gateways, worker and signallers parsed");
}
