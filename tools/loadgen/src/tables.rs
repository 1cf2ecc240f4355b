//! One field map per table: what the platform would send for record `n` of a workspace.
//!
//! Values hang together: a click carries a link and a user agent, a bounce a reason, an SMS
//! delivery a phone number; references (a metric's `delivery_id`, a delivery's person) point at
//! ids other tables generate for earlier `n`.

use dwsync_contract::Table;
use serde_json::{Map, Value};

use crate::ids::{self, base64_id, hex_id, ulid};
use crate::rng::Rng;
use crate::values::{self, json_timestamp};
use crate::vocab;

/// 2026-01-01T00:00:00Z: the generated activity starts here.
const EPOCH_MS: i64 = 1_767_225_600_000;

/// Sets a field to a value computed from the context (`c.set(name, c.rng...)` would borrow twice).
macro_rules! put {
    ($c:ident, $name:literal, $value:expr) => {{
        let value = $value;
        $c.set($name, value);
    }};
}

/// Everything one record's field builder needs.
pub(crate) struct Ctx {
    rng: Rng,
    seed: u64,
    table: Table,
    ws: i64,
    n: u64,
    /// When the record's activity happened.
    at_ms: i64,
    map: Map<String, Value>,
}

impl Ctx {
    /// A builder for record `n` of `table` in workspace `ws`.
    pub(crate) fn new(rng: Rng, seed: u64, table: Table, ws: i64, n: u64) -> Self {
        let mut rng = rng;
        let at_ms = EPOCH_MS + (n % 1_000_000_000) as i64 * 250 + rng.range(0, 5_000);
        Self { rng, seed, table, ws, n, at_ms, map: Map::new() }
    }

    /// The finished field map.
    pub(crate) fn into_fields(self) -> Map<String, Value> {
        self.map
    }

    fn set(&mut self, name: &str, value: impl Into<Value>) {
        let _ = self.map.insert(name.to_owned(), value.into());
    }

    /// A timestamp, in one of the representations the platform mixes.
    fn ts(&mut self, name: &str, ms: i64) {
        let v = json_timestamp(&mut self.rng, ms);
        self.set(name, v);
    }

    /// A NULL: an explicit `null` or an absent key, half and half.
    fn null(&mut self, name: &str) {
        if self.rng.chance(0.5) {
            self.set(name, Value::Null);
        }
    }

    /// `make()` with probability `p`, else NULL.
    fn maybe<V: Into<Value>>(&mut self, name: &str, p: f64, make: impl FnOnce(&mut Self) -> V) {
        if self.rng.chance(p) {
            let v = make(self).into();
            self.set(name, v);
        } else {
            self.null(name);
        }
    }

    /// The unique token of this record.
    fn unique(&self) -> u128 {
        self.token_of(self.table, self.n)
    }

    /// The unique token of record `n` of `table` in this workspace.
    fn token_of(&self, table: Table, n: u64) -> u128 {
        ids::token(ids::salt(self.seed, table), self.ws, n)
    }

    /// The token of a random earlier record of `table` (among the first `within`).
    fn earlier(&mut self, table: Table, within: u64) -> u128 {
        let n = self.rng.below(self.n.min(within) + 1);
        self.token_of(table, n)
    }

    /// This record's integer id (`n + 1`).
    fn int_id(&self) -> i64 {
        self.n as i64 + 1
    }

    /// A sequence number that grows with `n`.
    fn seq_num(&self) -> i64 {
        (self.n as i64).wrapping_mul(3) + 1
    }

    fn small_id(&mut self, max: i64) -> i64 {
        self.rng.range(1, max)
    }

    fn later(&mut self, after_ms: i64, max_ms: i64) -> i64 {
        after_ms + self.rng.range(0, max_ms)
    }

    fn topic_names(&mut self) {
        if self.rng.chance(0.6) {
            let (k, start) = (1 + self.rng.below(3) as usize, self.rng.below(vocab::TOPICS.len() as u64) as usize);
            let topics: Vec<Value> =
                vocab::TOPICS.iter().cycle().skip(start).take(k).map(|t| Value::from(*t)).collect();
            self.set("topic_names", topics);
        } else {
            self.null("topic_names");
        }
    }
}

/// Fills the field map of one record.
pub(crate) fn fill(c: &mut Ctx) {
    put!(c, "workspace_id", c.ws);
    match c.table {
        Table::Deliveries => deliveries(c),
        Table::DeliveryContent => delivery_content(c),
        Table::Metrics => metrics(c),
        Table::Outputs => outputs(c),
        Table::People => people(c),
        Table::Subjects => subjects(c),
        Table::Attributes => attributes(c),
        Table::Campaigns => campaigns(c),
        Table::Broadcasts => broadcasts(c),
        Table::Actions => actions(c),
        Table::Objects => objects(c),
        Table::ObjectTypes => object_types(c),
        Table::ObjectAttributes => object_attributes(c),
        Table::Events => events(c),
        Table::Inbound => inbound(c),
    }
}

fn deliveries(c: &mut Ctx) {
    put!(c, "delivery_id", base64_id(c.unique()));
    c.maybe("internal_customer_id", 0.95, |c| hex_id(c.earlier(Table::People, 100_000)));
    c.maybe("subject_id", 0.6, |c| base64_id(c.earlier(Table::Subjects, 100_000)));
    c.maybe("event_id", 0.2, |c| ulid(c.earlier(Table::Events, 100_000)));
    put!(c, "delivery_type", *c.rng.weighted(vocab::DELIVERY_TYPES));
    message_origin(c);
    c.maybe("trigger_id", 0.2, |c| c.small_id(5_000));
    c.ts("created_at", c.at_ms);
    c.maybe("transactional_message_id", 0.15, |c| c.small_id(300));
    put!(c, "seq_num", c.seq_num());
}

/// campaign/newsletter, action and content ids of a message.
fn message_origin(c: &mut Ctx) {
    if c.rng.chance(0.7) {
        put!(c, "campaign_id", c.small_id(2_000));
        c.null("newsletter_id");
    } else {
        c.null("campaign_id");
        put!(c, "newsletter_id", c.small_id(800));
    }
    c.maybe("action_id", 0.9, |c| c.small_id(20_000));
    c.maybe("content_id", 0.3, |c| c.small_id(50));
}

fn delivery_content(c: &mut Ctx) {
    put!(c, "delivery_id", base64_id(c.token_of(Table::Deliveries, c.n)));
    let kind = *c.rng.weighted(&[("email", 70), ("sms", 10), ("push", 10), ("webhook", 5), ("in-app", 5)]);
    c.set("type", kind);
    message_origin(c);
    let (first, _) = values::person_name(&mut c.rng);
    match kind {
        "email" => {
            c.set("from", "Acme Team <hello@mail.acme.io>");
            c.maybe("reply_to", 0.3, |_| "support@acme.io");
            c.maybe("bcc", 0.05, |_| "archive@acme.io");
            let to = values::email(&mut c.rng);
            c.set("recipient", to);
            let subject = values::subject_line(&mut c.rng);
            c.set("subject", subject);
            let (html, plain) = values::email_body(&mut c.rng, first);
            c.maybe("body_amp", 0.05, |_| html.replace("<html", "<html \u{26a1}4email"));
            c.set("body", html);
            c.maybe("body_plain", 0.7, |_| plain);
            c.maybe("preheader", 0.5, |c| values::text(&mut c.rng, 8));
        }
        "sms" => {
            let to = values::phone(&mut c.rng);
            c.set("recipient", to);
            let body = format!("Hi {first}! {} Reply STOP to opt out.", values::text(&mut c.rng, 12));
            c.set("body", body);
        }
        "push" | "in-app" => {
            let token = format!("{:016x}{:016x}", c.rng.next_u64(), c.rng.next_u64());
            c.set("recipient", token);
            let body = serde_json::json!({
                "title": values::subject_line(&mut c.rng),
                "body": values::text(&mut c.rng, 15),
                "link": values::url(&mut c.rng),
                "image_url": "https://cdn.acme.io/img/hero@2x.png",
            });
            c.set("body", body.to_string());
        }
        _ => {
            let url = format!("https://hooks.partner.example/{}", values::short_hex(&mut c.rng));
            c.set("recipient", url.clone());
            c.set("url", url);
            put!(c, "method", *c.rng.pick(&["POST", "PUT"]));
            c.set("headers", r#"{"Content-Type":"application/json","X-Signature":"t=1767225600,v1=5f1c"}"#);
            let body = serde_json::json!({"event": "delivery", "name": first, "note": values::text(&mut c.rng, 20)});
            c.set("body", body.to_string());
        }
    }
}

fn metrics(c: &mut Ctx) {
    put!(c, "event_id", ulid(c.unique()));
    put!(c, "delivery_id", base64_id(c.earlier(Table::Deliveries, u64::MAX)));
    let metric = *c.rng.weighted(vocab::METRICS);
    c.set("metric", metric);
    let failed = matches!(metric, "bounced" | "dropped" | "failed" | "undeliverable");
    let engaged = matches!(metric, "opened" | "clicked" | "converted");
    if failed {
        put!(c, "reason", *c.rng.pick(vocab::FAILURE_REASONS));
    } else {
        c.null("reason");
    }
    if metric == "clicked" {
        put!(c, "link_id", c.small_id(100_000));
        let url = values::url(&mut c.rng);
        c.set("link_url", url);
    } else {
        c.null("link_id");
        c.null("link_url");
    }
    c.ts("created_at", c.at_ms);
    put!(c, "seq_num", c.seq_num());
    let proxied = engaged && c.rng.chance(0.3);
    c.set("proxied", proxied);
    put!(c, "prefetched", metric == "opened" && c.rng.chance(0.1));
    put!(c, "machine", engaged && c.rng.chance(0.05));
    if engaged || c.rng.chance(0.05) {
        put!(c, "user_agent", *c.rng.pick(vocab::USER_AGENTS));
        put!(c, "email_client", *c.rng.pick(vocab::EMAIL_CLIENTS));
    } else {
        c.null("user_agent");
        c.null("email_client");
    }
    if c.rng.chance(0.85) {
        let domain = *c.rng.weighted(vocab::EMAIL_DOMAINS);
        let (provider, mx) = *c.rng.pick(vocab::INBOX_PROVIDERS);
        c.set("inbox_domain", domain);
        c.set("inbox_provider", provider);
        c.set("mx_host", mx);
    } else {
        c.null("inbox_domain");
        c.null("inbox_provider");
        c.null("mx_host");
    }
}

fn outputs(c: &mut Ctx) {
    put!(c, "output_id", ulid(c.unique()));
    put!(c, "subject_name", base64_id(c.earlier(Table::Subjects, 100_000)));
    let (kind, explanation) = *c.rng.pick(vocab::OUTPUT_TYPES);
    c.set("output_type", kind);
    put!(c, "action_id", c.small_id(20_000));
    c.set("explanation", explanation);
    let message = matches!(kind, "email" | "push" | "sms" | "webhook");
    if message {
        put!(c, "delivery_id", base64_id(c.earlier(Table::Deliveries, u64::MAX)));
        c.maybe("draft", 0.9, |c| c.rng.chance(0.05));
        c.maybe("link_tracked", 0.9, |c| c.rng.chance(0.8));
    } else {
        c.null("delivery_id");
        c.null("draft");
        c.null("link_tracked");
    }
    c.maybe("split_test_index", 0.1, |c| c.rng.range(0, 3));
    if kind == "delay" {
        let ends = c.later(c.at_ms, 7 * 86_400_000);
        c.ts("delay_ends_at", ends);
    } else {
        c.null("delay_ends_at");
    }
    c.maybe("branch_index", if kind.ends_with("branch") { 1.0 } else { 0.0 }, |c| c.rng.range(0, 4));
    let segment = c.rng.chance(0.05);
    c.maybe("manual_segment_id", if segment { 1.0 } else { 0.0 }, |c| c.small_id(400));
    c.maybe("add_to_manual_segment", if segment { 1.0 } else { 0.0 }, |c| c.rng.chance(0.7));
    c.ts("created_at", c.at_ms);
    put!(c, "seq_num", c.seq_num());
}

fn people(c: &mut Ctx) {
    let email = values::email(&mut c.rng);
    let customer_id = match c.rng.below(3) {
        0 => email.clone(),
        1 => format!("user_{}", 10_000 + c.n),
        _ => format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            c.rng.next_u64() as u32,
            c.rng.below(1 << 16),
            c.rng.below(1 << 12),
            c.rng.below(1 << 12),
            c.rng.next_u64() & 0xffff_ffff_ffff
        ),
    };
    c.set("customer_id", customer_id);
    put!(c, "internal_customer_id", hex_id(c.unique()));
    let deleted = c.rng.chance(0.03);
    let suppressed = !deleted && c.rng.chance(0.02);
    c.maybe("deleted", if deleted { 1.0 } else { 0.4 }, |_| deleted);
    c.maybe("suppressed", if suppressed { 1.0 } else { 0.4 }, |_| suppressed);
    // Deleted or suppressed people carry created_at = epoch 0, as the spec says.
    // About 40% are new people (created now: they go to the new-people file), the rest changes.
    let created = if deleted || suppressed {
        0
    } else if c.rng.chance(0.4) {
        c.at_ms
    } else {
        c.at_ms - c.rng.range(1, 400 * 86_400_000)
    };
    c.ts("created_at", created);
    c.ts("updated_at", c.at_ms);
    c.maybe("email_addr", if deleted { 0.0 } else { 0.85 }, |_| email);
}

fn subjects(c: &mut Ctx) {
    put!(c, "subject_name", base64_id(c.unique()));
    c.maybe("internal_customer_id", 0.95, |c| hex_id(c.earlier(Table::People, 100_000)));
    let kind = *c.rng.pick(vocab::CAMPAIGN_TYPES);
    c.set("campaign_type", kind);
    put!(c, "campaign_id", c.small_id(2_000));
    c.maybe("event_id", if kind == "triggered" { 0.9 } else { 0.0 }, |c| ulid(c.earlier(Table::Events, 100_000)));
    c.maybe("trigger_id", 0.3, |c| c.small_id(5_000));
    let started = c.at_ms - c.rng.range(0, 3_600_000);
    c.ts("started_campaign_at", started);
    c.ts("created_at", c.at_ms);
    put!(c, "seq_num", c.seq_num());
}

fn attributes(c: &mut Ctx) {
    // Record n is an attribute change of person n.
    put!(c, "internal_customer_id", hex_id(c.token_of(Table::People, c.n)));
    let (name, examples) = *c.rng.pick(vocab::PERSON_ATTRIBUTES);
    c.set("attribute_name", name);
    put!(c, "attribute_value", *c.rng.pick(examples));
    c.ts("timestamp", c.at_ms);
}

fn campaign_name(c: &mut Ctx) -> String {
    format!("{} #{}", c.rng.pick(vocab::CAMPAIGN_NAMES), c.rng.range(1, 40))
}

fn campaigns(c: &mut Ctx) {
    put!(c, "campaign_id", c.int_id());
    let name = campaign_name(c);
    c.set("name", name);
    let created = c.at_ms - c.rng.range(0, 200 * 86_400_000);
    c.ts("created_at", created);
    c.ts("updated_at", c.at_ms);
    put!(c, "version", c.rng.range(1, 30));
    c.topic_names();
}

fn broadcasts(c: &mut Ctx) {
    put!(c, "broadcast_id", c.int_id());
    let name = format!("{} – {}", campaign_name(c), c.rng.pick(&["EU", "US", "all customers", "VIP"]));
    c.set("name", name);
    let created = c.at_ms - c.rng.range(0, 30 * 86_400_000);
    c.ts("created_at", created);
    c.ts("updated_at", c.at_ms);
    c.topic_names();
}

fn actions(c: &mut Ctx) {
    put!(c, "campaign_id", c.small_id(2_000));
    put!(c, "action_id", c.int_id());
    c.maybe("name", 0.8, |c| {
        format!("{} {}", c.rng.pick(&["Email", "Push", "SMS", "Webhook", "Delay"]), c.rng.range(1, 12))
    });
    let created = c.at_ms - c.rng.range(0, 200 * 86_400_000);
    c.ts("created_at", created);
    c.ts("updated_at", c.at_ms);
    put!(c, "version", c.rng.range(1, 30));
    c.topic_names();
}

fn objects(c: &mut Ctx) {
    put!(c, "object_type_id", c.small_id(6));
    let object_id = format!("{}-{}", c.rng.pick(&["acct", "company", "course", "store"]), 1_000 + c.n);
    c.set("object_id", object_id);
    put!(c, "internal_object_id", hex_id(c.unique()));
    c.maybe("deleted", 0.3, |c| c.rng.chance(0.1));
    // About 40% are new objects (created now), the rest changes.
    let created = if c.rng.chance(0.4) { c.at_ms } else { c.at_ms - c.rng.range(1, 100 * 86_400_000) };
    c.ts("created_at", created);
    c.ts("updated_at", c.at_ms);
}

fn object_types(c: &mut Ctx) {
    put!(c, "object_type_id", c.int_id());
    let (name, slug) = *c.rng.pick(vocab::OBJECT_TYPES);
    let suffix = if c.n < vocab::OBJECT_TYPES.len() as u64 { String::new() } else { format!(" {}", c.n) };
    c.set("name", format!("{name}{suffix}"));
    c.set("slug", format!("{slug}{}", suffix.replace(' ', "-")));
    put!(c, "deleted", c.rng.chance(0.05));
    put!(c, "enabled", c.rng.chance(0.9));
    c.ts("updated_at", c.at_ms);
}

fn object_attributes(c: &mut Ctx) {
    put!(c, "object_type_id", c.small_id(6));
    // Record n is an attribute change of object n.
    put!(c, "internal_object_id", hex_id(c.token_of(Table::Objects, c.n)));
    let (name, examples) = *c.rng.pick(vocab::OBJECT_ATTRIBUTES);
    c.set("attribute_name", name);
    put!(c, "attribute_value", *c.rng.pick(examples));
    c.ts("timestamp", c.at_ms);
}

fn events(c: &mut Ctx) {
    put!(c, "event_id", ulid(c.unique()));
    put!(c, "internal_customer_id", hex_id(c.earlier(Table::People, 100_000)));
    let name = *c.rng.pick(vocab::EVENT_NAMES);
    c.set("name", name);
    put!(c, "type", *c.rng.weighted(vocab::EVENT_TYPES));
    let data = serde_json::json!({
        "product": c.rng.pick(vocab::PRODUCTS),
        "price": c.rng.range(100, 25_000) as f64 / 100.0,
        "currency": c.rng.pick(&["EUR", "USD", "BRL", "JPY"]),
        "url": values::url(&mut c.rng),
        "note": if c.rng.chance(0.2) { "Grüße aus Köln – \"quoted\"\nnew line" } else { "" },
    });
    c.set("data", data.to_string());
    c.ts("timestamp", c.at_ms);
    let processed = c.later(c.at_ms, 2_000);
    c.ts("processed_at", processed);
    let k = c.rng.below(3) as usize;
    let sources: Vec<Value> = (0..k).map(|_| Value::from(*c.rng.pick(vocab::EVENT_SOURCES))).collect();
    let uas: Vec<Value> = (0..k).map(|_| Value::from(*c.rng.pick(vocab::USER_AGENTS))).collect();
    c.set("sources", sources);
    c.set("source_uas", uas);
}

fn inbound(c: &mut Ctx) {
    put!(c, "event_id", ulid(c.unique()));
    put!(c, "internal_customer_id", hex_id(c.earlier(Table::People, 100_000)));
    c.ts("timestamp", c.at_ms);
    let processed = c.later(c.at_ms, 1_500);
    c.ts("processed_at", processed);
    put!(c, "channel", *c.rng.weighted(&[("sms", 85), ("whatsapp", 15)]));
    let from = values::phone(&mut c.rng);
    c.set("from", from);
    c.set("to", "+14155550100");
    let body = *c.rng.pick(vocab::INBOUND_BODIES);
    c.set("body", body);
    let keyword = vocab::KEYWORDS.iter().find(|k| body.eq_ignore_ascii_case(k)).copied();
    match keyword {
        Some(k) => c.set("keyword", k),
        None => c.null("keyword"),
    }
    c.set("optout", keyword == Some("STOP"));
    put!(c, "messaging_service_sid", format!("MG{:016x}{:016x}", mixed(c, 1), mixed(c, 2)));
    put!(c, "message_sid", format!("SM{:016x}{:016x}", c.rng.next_u64(), c.rng.next_u64()));
    c.maybe("in_reply_to_delivery_id", 0.6, |c| base64_id(c.earlier(Table::Deliveries, u64::MAX)));
}

/// A fixed per-workspace value (the same for every record of the workspace).
fn mixed(c: &Ctx, k: u64) -> u64 {
    crate::rng::hash(&[c.seed, c.ws as u64, k])
}
