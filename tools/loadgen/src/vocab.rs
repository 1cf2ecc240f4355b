//! Word lists the generator draws realistic values from.

/// Delivery types with their share of traffic.
pub(crate) const DELIVERY_TYPES: &[(&str, u32)] =
    &[("email", 55), ("push", 15), ("in-app", 10), ("sms", 10), ("slack", 5), ("webhook", 5)];

/// Message metrics with their share of traffic.
pub(crate) const METRICS: &[(&str, u32)] = &[
    ("sent", 30),
    ("delivered", 28),
    ("opened", 18),
    ("clicked", 8),
    ("converted", 2),
    ("bounced", 3),
    ("spammed", 1),
    ("unsubscribed", 1),
    ("dropped", 2),
    ("failed", 2),
    ("undeliverable", 1),
    ("attempted", 4),
];

/// Reasons given with bounced, dropped, failed and undeliverable metrics.
pub(crate) const FAILURE_REASONS: &[&str] = &[
    "550 5.1.1 The email account that you tried to reach does not exist.",
    "552 5.2.2 The recipient's mailbox is full and can't accept messages now.",
    "554 5.7.1 Message rejected due to content restrictions",
    "Suppressed address: the person unsubscribed or bounced before",
    "Invalid device token",
    "Twilio error 21610: Attempt to send to unsubscribed recipient",
    "Liquid error: undefined variable customer.first_name",
    "webhook returned 503 Service Unavailable",
];

/// First names, some with non-ASCII letters.
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emma",
    "François",
    "Grace",
    "Hiro",
    "Isabel",
    "Jonas",
    "Kai",
    "Łukasz",
    "Maria",
    "Ngọc",
    "Olivia",
    "Priya",
    "Quinn",
    "Rafael",
    "Søren",
    "Tomás",
    "Uma",
    "Viktor",
    "Wei",
    "Zoë",
    "Ayşe",
    "李雷",
    "Анна",
    "Mateo",
    "Noah",
    "Sofia",
];

/// Last names, some with non-ASCII letters.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Nguyễn",
    "Kowalski",
    "O'Brien",
    "Rossi",
    "Tanaka",
    "Johansson",
    "Silva",
    "Dubois",
    "Novak",
    "Kim",
    "Patel",
    "Cohen",
    "Yılmaz",
    "Иванова",
    "Brown",
    "Lee",
    "Martin",
];

/// Domains of recipients' addresses.
pub(crate) const EMAIL_DOMAINS: &[(&str, u32)] = &[
    ("gmail.com", 40),
    ("yahoo.com", 10),
    ("outlook.com", 10),
    ("hotmail.com", 6),
    ("icloud.com", 8),
    ("proton.me", 2),
    ("gmx.de", 3),
    ("web.de", 2),
    ("example.co.uk", 4),
    ("acme-corp.io", 10),
    ("mail.ru", 2),
    ("qq.com", 3),
];

/// Inbox providers and their MX hosts.
pub(crate) const INBOX_PROVIDERS: &[(&str, &str)] = &[
    ("Google", "gmail-smtp-in.l.google.com"),
    ("Microsoft", "outlook-com.olc.protection.outlook.com"),
    ("Yahoo", "mta7.am0.yahoodns.net"),
    ("Apple", "mx01.mail.icloud.com"),
    ("Proton", "mail.protonmail.ch"),
    ("Mimecast", "eu-smtp-inbound-1.mimecast.com"),
];

/// Email clients seen on opens and clicks.
pub(crate) const EMAIL_CLIENTS: &[&str] =
    &["Gmail", "Apple Mail", "Outlook 2019", "Outlook.com", "Yahoo! Mail", "iOS Mail", "Samsung Email", "Thunderbird"];

/// Browser and mail-client user agents.
pub(crate) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17628; Pro)",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];

/// Where events come from.
pub(crate) const EVENT_SOURCES: &[&str] = &["javascript", "api", "ios", "android", "segment", "rudderstack", "csv"];

/// Event names.
pub(crate) const EVENT_NAMES: &[&str] = &[
    "page",
    "signed_up",
    "logged_in",
    "added_to_cart",
    "checkout_started",
    "order_completed",
    "subscription_renewed",
    "trial_ending",
    "password_reset_requested",
    "app_opened",
];

/// Event types.
pub(crate) const EVENT_TYPES: &[(&str, u32)] = &[("event", 70), ("page", 20), ("screen", 10)];

/// Product and page names used in event data and URLs.
pub(crate) const PRODUCTS: &[&str] =
    &["Trail Runner 2", "Café Crème Mug", "Noise-Cancelling Headphones", "Yoga Mat Pro", "Smart Kettle", "Gift Card"];

/// Link paths of tracked URLs.
pub(crate) const URL_PATHS: &[&str] = &[
    "/pricing",
    "/blog/2026/what-is-new",
    "/account/settings",
    "/products/trail-runner-2",
    "/checkout?step=payment",
    "/docs/getting-started",
    "/unsubscribe",
    "/invite/accept",
];

/// Company domains of the workspaces' own sites.
pub(crate) const SITE_DOMAINS: &[&str] =
    &["acme.io", "shop.example.com", "www.northwind.dev", "app.fjord-labs.no", "tienda.ejemplo.mx"];

/// Campaign, broadcast and action name parts.
pub(crate) const CAMPAIGN_NAMES: &[&str] = &[
    "Onboarding",
    "Welcome series",
    "Abandoned cart",
    "Win-back",
    "Trial ending",
    "Weekly digest",
    "Product launch 🚀",
    "Black Friday – early access",
    "Rappel: votre panier",
    "NPS survey",
    "Renewal reminder",
    "Re-engagement 💌",
];

/// Subscription topic names.
pub(crate) const TOPICS: &[&str] =
    &["Newsletter", "Product updates", "Promotions", "Events", "Tips & tricks", "Billing"];

/// Campaign types of subjects.
pub(crate) const CAMPAIGN_TYPES: &[&str] = &["triggered", "segment", "date", "api_triggered", "form", "transactional"];

/// Output (workflow step) types, with the explanation each writes.
pub(crate) const OUTPUT_TYPES: &[(&str, &str)] = &[
    ("email", "Sent email to the person"),
    ("push", "Sent push notification to 2 devices"),
    ("sms", "Sent SMS"),
    ("delay", "Waited 1 day"),
    ("webhook", "Sent webhook; the endpoint answered 200"),
    ("true_false_branch", "The person matched the condition: plan = \"pro\""),
    ("random_cohort_branch", "Randomly assigned to branch B"),
    ("attribute_update", "Set attribute last_campaign"),
    ("exit", "Exited: goal reached"),
];

/// Person attribute names and example values.
pub(crate) const PERSON_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("plan", &["free", "starter", "pro", "enterprise"]),
    ("city", &["Berlin", "São Paulo", "Zürich", "New York", "東京", "Kraków", "Lagos"]),
    ("language", &["en", "de", "fr", "pt-BR", "ja", "pl"]),
    ("first_name", &["Ada", "Zoë", "François", "Ngọc", "Søren"]),
    ("lifetime_value", &["0", "19.99", "249.00", "1875.50"]),
    ("accepts_marketing", &["true", "false"]),
    ("company", &["Acme Inc.", "Northwind", "Fjord Labs AS", "Müller & Söhne GmbH"]),
];

/// Object type names and their slugs.
pub(crate) const OBJECT_TYPES: &[(&str, &str)] = &[
    ("Companies", "companies"),
    ("Accounts", "accounts"),
    ("Courses", "courses"),
    ("Online classes", "online-classes"),
    ("Stores", "stores"),
    ("Teams", "teams"),
];

/// Object attribute names and example values.
pub(crate) const OBJECT_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("name", &["Acme Inc.", "Northwind", "Café Olé", "Intro to Rust"]),
    ("industry", &["retail", "saas", "education", "finance"]),
    ("seats", &["5", "25", "250", "1000"]),
    ("region", &["eu-west", "us-east", "apac"]),
];

/// Inbound SMS bodies.
pub(crate) const INBOUND_BODIES: &[&str] = &[
    "STOP",
    "Yes please!",
    "Can I change my delivery date?",
    "HELP",
    "Merci 🙏",
    "What time do you open tomorrow?",
    "👍",
    "Ich möchte mein Abo kündigen.",
];

/// Inbound keywords.
pub(crate) const KEYWORDS: &[&str] = &["STOP", "HELP", "YES", "START", "UNSUBSCRIBE"];

/// Words for generated text (email bodies, explanations, subjects).
pub(crate) const WORDS: &[&str] = &[
    "the",
    "new",
    "account",
    "your",
    "order",
    "we",
    "are",
    "happy",
    "to",
    "share",
    "update",
    "with",
    "you",
    "today",
    "our",
    "team",
    "has",
    "been",
    "working",
    "on",
    "faster",
    "checkout",
    "and",
    "better",
    "reports",
    "for",
    "every",
    "workspace",
    "please",
    "review",
    "settings",
    "before",
    "renewal",
    "thanks",
    "for",
    "reading",
    "this",
    "week",
    "in",
    "product",
    "news",
    "café",
    "naïve",
    "über",
    "déjà",
    "vu",
    "free",
    "shipping",
    "limited",
    "offer",
    "ends",
    "soon",
    "learn",
    "more",
    "about",
    "features",
    "data",
    "privacy",
];
