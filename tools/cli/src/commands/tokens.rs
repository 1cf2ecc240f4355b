//! `dwsync tokens`: workspace tokens issued through the control service's REST API
//! (`docs/CONTROL.md`, admin token): `create` issues one and prints it (the only time it is
//! shown), `list` shows them without the tokens, `revoke` removes one. `--json` prints the API's
//! answer instead.

use std::io::Write;

use dwsync_api::{TokenList, TokenSpec, TokenView};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Error;
use crate::api_client::{ApiArgs, ApiClient};

/// Arguments of `dwsync tokens`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokensArgs {
    /// The control API and its (admin) token.
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print the API's JSON answer instead of the readable report.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: TokensAction,
}

/// `dwsync tokens` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokensAction {
    /// Issue a token for a workspace and print it: it is shown this once, only its digest is kept.
    Create {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// What the token is for (1 to 64 characters).
        #[arg(long)]
        name: String,
    },
    /// List a workspace's tokens: id, name, creation time (never the tokens).
    List {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
    },
    /// Revoke one of a workspace's tokens by its id.
    Revoke {
        /// The workspace id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        workspace: i64,
        /// The token's id (from `create` or `list`).
        id: String,
    },
}

impl TokensAction {
    /// The action's name, e.g. `create`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::List { .. } => "list",
            Self::Revoke { .. } => "revoke",
        }
    }

    /// The request: method, path segments and body.
    fn request(&self) -> (Method, Vec<String>, Option<Value>) {
        let tokens = |id: &i64| vec!["v1".to_owned(), "workspaces".to_owned(), id.to_string(), "tokens".to_owned()];
        match self {
            Self::Create { workspace, name } => {
                (Method::POST, tokens(workspace), Some(json!(TokenSpec { name: name.clone() })))
            }
            Self::List { workspace } => (Method::GET, tokens(workspace), None),
            Self::Revoke { workspace, id } => {
                let mut path = tokens(workspace);
                path.push(id.clone());
                (Method::DELETE, path, None)
            }
        }
    }
}

/// Runs `dwsync tokens …`, writing the report (or, with `--json`, the API's answer) to `out`.
pub async fn run(args: &TokensArgs, out: &mut dyn Write) -> Result<(), Error> {
    let client = ApiClient::new(&args.api)?;
    let (method, path, body) = args.action.request();
    let request = format!("{method} /{}", path.join("/"));
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let value = client.call(method, &segments, body.as_ref()).await?;
    let bad = |reason: String| Error::BadAnswer { request: request.clone(), reason };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value).map_err(|e| bad(e.to_string()))?)?;
        return Ok(());
    }
    match &args.action {
        TokensAction::Create { workspace, .. } => {
            let token: TokenView = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
            let secret = token.token.as_deref().ok_or_else(|| bad("no token in the answer".into()))?;
            writeln!(out, "workspace {workspace}: token {} ({}) issued; it is shown this once:", token.id, token.name)?;
            writeln!(out, "{secret}")?;
        }
        TokensAction::List { workspace } => {
            let list: TokenList = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
            if list.tokens.is_empty() {
                writeln!(out, "workspace {workspace}: no issued tokens")?;
            }
            for token in list.tokens {
                writeln!(out, "{:<18}{:<26}{}", token.id, token.created_at, token.name)?;
            }
        }
        TokensAction::Revoke { workspace, id } => writeln!(out, "workspace {workspace}: token {id} revoked")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let (m, path, body) = TokensAction::Create { workspace: 42, name: "ci".into() }.request();
        assert_eq!((m, path.join("/")), (Method::POST, "v1/workspaces/42/tokens".to_owned()));
        assert_eq!(body, Some(json!({"name": "ci"})));
        let (m, path, _) = TokensAction::List { workspace: 7 }.request();
        assert_eq!((m, path.join("/")), (Method::GET, "v1/workspaces/7/tokens".to_owned()));
        let (m, path, _) = TokensAction::Revoke { workspace: 7, id: "00ff".into() }.request();
        assert_eq!((m, path.join("/")), (Method::DELETE, "v1/workspaces/7/tokens/00ff".to_owned()));
    }
}
