//! Alerts: the events an operator must hear about, sent through `settings.notify` (a command:
//! the event in its environment and as one JSON object on its stdin) and `settings.on_event` (a
//! Lua chunk: the same object as the table `event`).
//!
//! What fires: a start that failed, a service backed off, one given up on, one not alive and
//! well for longer than `settings.notify_after`, a config that does not load; and `recovered`,
//! once, when a service (or the config) that fired any of those is well again. Each condition
//! fires once however many ticks it lasts: what was sent is kept in the state
//! ([`State::alerts`]). The hooks run at the end of the tick, once everything is started, each
//! on its own thread and bounded by `settings.hook_timeout` (the command killed with its process
//! group): a hook that hangs neither delays a start nor holds the tick past that limit.

use crate::config::Config;
use crate::engine::{Hold, Note, Plan, Verdict};
use crate::event::{AUTOHEAL, Event};
use crate::report::one_line;
use crate::state::State;
use crate::time::Unix;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The version of the alert JSON's shape. A field is only ever added within a version.
pub const SCHEMA: u32 = 1;

/// One alert to send: the event and its log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub event: Event,
    pub message: String,
}

/// The alerts due at the end of a tick, from its last plan and what it emitted; `state.alerts`
/// records them (and forgets what recovered). `config_valid`: the file loaded (else this tick
/// heals with its last good version, and `emitted` says why).
pub fn due(
    config: &Config,
    plan: &Plan,
    state: &mut State,
    emitted: &[(Event, String)],
    now: Unix,
    config_valid: bool,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let after = config.settings.notify_after.as_secs_f64();
    // Services gone from the file are no longer watched.
    state
        .alerts
        .retain(|name, _| config.service(name).is_some());
    let reasons = crate::report::words::Reasons::new(config, &plan.decisions, now);
    let paused = held_by_pauses(config, plan);
    for d in &plan.decisions {
        let name = d.service.as_str();
        // Down by an operator's pause, or waiting only on one: a planned window pages no one,
        // and `notify_after` counts from its end.
        if paused.contains(name) {
            if let Some(ss) = state.services.get_mut(name) {
                ss.down_since = None;
            }
            continue;
        }
        let ss = state.services.get(name).cloned().unwrap_or_default();
        let mut now_true: Vec<Alert> = emitted
            .iter()
            .filter(|(e, _)| matches!(e, Event::StartFailed { service, .. } if service == name))
            .map(|(e, text)| Alert {
                event: e.clone(),
                message: text.clone(),
            })
            .collect();
        let mut push = |event: Event| {
            let message = one_line(&crate::report::words::event(&event, Some(&reasons))).into();
            now_true.push(Alert { event, message });
        };
        let hold = match &d.verdict {
            Verdict::Held(h) => Some(h),
            Verdict::Unhealthy { held, .. } => held.as_ref(),
            _ => None,
        };
        match hold {
            Some(Hold::Backoff { until, failures }) => push(Event::BackedOff {
                service: name.to_string(),
                until: *until,
                failures: *failures,
            }),
            Some(Hold::GaveUp { failures }) => push(Event::Plan(Note::GaveUp {
                service: name.to_string(),
                failures: *failures,
            })),
            _ => {}
        }
        if let Some(since) = ss.down_since.filter(|t| now - t >= after)
            && d.verdict != Verdict::Alive
        {
            push(Event::HeldLong {
                service: name.to_string(),
                since,
                reason: reasons.of(name).unwrap_or_default(),
            });
        }
        let sent = state.alerts.remove(name).unwrap_or_default();
        let sent = fire(
            &mut out,
            Some(name),
            sent,
            now_true,
            d.verdict == Verdict::Alive,
        );
        if !sent.is_empty() {
            state.alerts.insert(name.to_string(), sent);
        }
    }
    let config_alert = emitted
        .iter()
        .filter(|(e, _)| matches!(e, Event::ConfigInvalid { .. }))
        .map(|(event, message)| Alert {
            event: event.clone(),
            message: message.clone(),
        })
        .take(1)
        .collect();
    let sent = std::mem::take(&mut state.config_alerts);
    state.config_alerts = fire(&mut out, None, sent, config_alert, config_valid);
    out
}

/// The services held by a pause: paused themselves, or waiting only on services so held
/// (their deps' first, so a chain below a paused service is held by it all the way up).
fn held_by_pauses<'a>(config: &'a Config, plan: &Plan) -> BTreeSet<&'a str> {
    let verdicts: std::collections::HashMap<&str, &Verdict> = plan
        .decisions
        .iter()
        .map(|d| (d.service.as_str(), &d.verdict))
        .collect();
    let mut held = BTreeSet::new();
    for &i in config.graph.order() {
        let name = config.services[i].name.as_str();
        let by_pause = match verdicts.get(name) {
            Some(Verdict::Held(Hold::Paused(_)))
            | Some(Verdict::Unhealthy {
                held: Some(Hold::Paused(_)),
                ..
            }) => true,
            Some(Verdict::Held(Hold::Deps { waits })) => waits.iter().all(|w| {
                matches!(&w.on, crate::engine::WaitOn::Service { name } if held.contains(name.as_str()))
            }),
            _ => false,
        };
        if by_pause {
            held.insert(name);
        }
    }
    held
}

/// The alerts of a service (`None`: the config itself), given what was `sent` for it: each
/// condition not sent yet, or, when it is well, `recovered` if anything was. What is sent now.
fn fire(
    out: &mut Vec<Alert>,
    service: Option<&str>,
    mut sent: BTreeSet<String>,
    now_true: Vec<Alert>,
    well: bool,
) -> BTreeSet<String> {
    if well {
        if !sent.is_empty() {
            let event = Event::Recovered {
                service: service.map(str::to_string),
                after: sent.into_iter().collect(),
            };
            let message = crate::report::words::event(&event, None);
            out.push(Alert { event, message });
        }
        return BTreeSet::new();
    }
    for alert in now_true {
        if sent.insert(alert.event.kind().to_string()) {
            out.push(alert);
        }
    }
    sent
}

/// The alert as the JSON object the hooks get (README.md "Alerts" documents it).
pub fn json(alert: &Alert, config: &Config, now: Unix) -> Value {
    let e = &alert.event;
    let details = match e {
        Event::StartFailed {
            restart, why, log, ..
        } => {
            use crate::event::StartFailure as F;
            let how = match why {
                F::Script { .. } => "script",
                F::Died { .. } => "died",
                F::LeftRunning { .. } => "left_running",
            };
            json!({"restart": restart, "how": how, "log": log.display().to_string()})
        }
        Event::BackedOff {
            until, failures, ..
        } => json!({"until": crate::time::rfc3339(*until), "failures": failures}),
        Event::Plan(Note::GaveUp { failures, .. }) => json!({"failures": failures}),
        Event::HeldLong { since, reason, .. } => {
            json!({"since": crate::time::rfc3339(*since), "reason": reason})
        }
        Event::ConfigInvalid { path, errors, .. } => {
            json!({"path": path.display().to_string(), "errors": errors})
        }
        Event::Recovered { after, .. } => json!({"after": after}),
        _ => json!({}),
    };
    json!({
        "schema": SCHEMA,
        "kind": e.kind(),
        "service": e.service(),
        "host": host(),
        "time": crate::time::rfc3339(now),
        "config": config.absolute_path().display().to_string(),
        "message": alert.message,
        "details": details,
    })
}

/// The environment of the `notify` command for one alert.
pub fn env(alert: &Alert, object: &Value) -> Vec<(String, String)> {
    // One line each, as the log has them: a NUL would keep the command from starting at all,
    // a newline or an escape forge a line of a pager's or a terminal's.
    let field = |k: &str| one_line(object[k].as_str().unwrap_or_default()).into_owned();
    vec![
        ("AUTOHEAL_SCHEMA".into(), SCHEMA.to_string()),
        ("AUTOHEAL_EVENT".into(), alert.event.kind().into()),
        ("AUTOHEAL_SERVICE".into(), field("service")),
        ("AUTOHEAL_MESSAGE".into(), field("message")),
        ("AUTOHEAL_HOST".into(), field("host")),
        ("AUTOHEAL_TIME".into(), field("time")),
        ("AUTOHEAL_CONFIG".into(), field("config")),
    ]
}

fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `<state_dir>/logs/notify.log`: where the `notify` command's output goes.
pub fn hook_log(dir: &Path) -> PathBuf {
    dir.join("logs").join("notify.log")
}

/// Sends every alert through the hooks the config has, all at once, and waits for them: at
/// most `settings.hook_timeout` (and the few seconds killing a hung command's group takes).
/// What to log of it: what failed, and the lines `on_event` logged.
pub fn send(config: &Arc<Config>, alerts: &[Alert], dir: &Path, now: Unix) -> Vec<Event> {
    let settings = &config.settings;
    if alerts.is_empty() || (settings.notify.is_none() && settings.on_event.is_none()) {
        return Vec::new();
    }
    let limit = settings.hook_timeout;
    let (tx, rx) = mpsc::channel::<Vec<Event>>();
    let mut sent = 0;
    let mut said = Vec::new();
    let trouble = |message: String| Event::Trouble { message };
    for alert in alerts {
        let object = json(alert, config, now);
        let what = format!(
            "{} {}",
            alert.event.kind(),
            alert.event.service().unwrap_or(AUTOHEAL)
        );
        let mut spawn = |work: Box<dyn FnOnce() -> Vec<Event> + Send>| {
            let tx = tx.clone();
            let started = std::thread::Builder::new()
                .name("autoheal-alert".into())
                .spawn(move || {
                    let _ = tx.send(work());
                });
            match started {
                Ok(_) => sent += 1,
                // A host out of threads: the alert is lost, and said.
                Err(e) => said.push(trouble(format!("alert {what}: not sent: {e}"))),
            }
        };
        if let Some(command) = settings.notify.clone() {
            let (env, log) = (env(alert, &object), hook_log(dir));
            let stdin = object.to_string().into_bytes();
            let what = what.clone();
            spawn(Box::new(move || {
                let outcome = crate::exec::run_hook(&command, &env, &stdin, limit, &log);
                if outcome.success() {
                    return Vec::new();
                }
                vec![trouble(format!(
                    "alert {what}: notify {}; see {}",
                    outcome.describe(),
                    log.display()
                ))]
            }));
        }
        if settings.on_event.is_some() {
            let (config, object, what) = (Arc::clone(config), object.clone(), what.clone());
            spawn(Box::new(move || {
                let lines = |lines: Vec<String>| {
                    lines.into_iter().map(|message| Event::LuaLog {
                        chunk: "settings.on_event".into(),
                        message,
                    })
                };
                match crate::lua::run_event_hook(&config, &object, limit) {
                    Ok(logged) => lines(logged).collect(),
                    Err(why) => vec![trouble(format!("alert {what}: on_event failed: {why}"))],
                }
            }));
        }
    }
    drop(tx);
    let end = crate::fmt::deadline(limit + crate::exec::TERM_GRACE + Duration::from_secs(2));
    for _ in 0..sent {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(events) => said.extend(events),
            Err(_) => {
                said.push(trouble(format!(
                    "an alert hook did not return within {}; left behind",
                    crate::fmt::duration(limit)
                )));
                break;
            }
        }
    }
    said
}
