//! Lifecycle events, as `/events` streams them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    // Legacy fields docker still sends for containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

pub struct Events {
    tx: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    pub(crate) fn emit(&self, kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let container = kind == "container";
        let ev = Event {
            kind: kind.into(),
            action: action.into(),
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
            status: container.then(|| action.to_string()),
            id: container.then(|| id.to_string()),
            from: if container { attributes.get("image").cloned() } else { None },
            actor: Actor { id: id.into(), attributes },
        };
        let mut r = self.recent.lock().unwrap();
        r.push_back(ev.clone());
        if r.len() > 1000 {
            r.pop_front();
        }
        drop(r);
        let _ = self.tx.send(ev);
    }

    /// How many clients follow the events now (`NEventsListener`).
    pub(crate) fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Recent events (for `since`) and a receiver for new ones, taken atomically.
    pub(crate) fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let r = self.recent.lock().unwrap();
        (r.iter().cloned().collect(), self.tx.subscribe())
    }
}

impl crate::Engine {
    /// The events kept so far and a receiver of those to come (`GET /events`).
    pub fn subscribe_events(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        self.events.subscribe()
    }

    /// How many event subscribers there are now.
    pub fn event_listeners(&self) -> usize {
        self.events.listeners()
    }
}
