//! The browser-origin allow-list for WebSocket handshakes and CORS.

/// Origins allowed to open sockets; `*` allows any.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    any: bool,
    list: Vec<String>,
}

impl AllowedOrigins {
    pub fn new(entries: &[String]) -> Self {
        let list: Vec<String> = entries
            .iter()
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        AllowedOrigins {
            any: list.is_empty() || list.iter().any(|s| s == "*"),
            list,
        }
    }

    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Say at start when any site may use this service from its visitors'
    /// browsers: fine on a laptop, not in production.
    pub fn warn_if_open(&self) {
        if self.any {
            tracing::warn!(
                "--allowed-origins is * (any site may open sockets and register from its \
                 visitors' browsers); set the page's origin(s) in production"
            );
        }
    }

    pub fn list(&self) -> &[String] {
        &self.list
    }

    /// Whether a handshake with this `Origin` header may proceed. Clients
    /// that send no `Origin` (not browsers) are allowed: the check protects
    /// browser users from other sites, not the server from programs.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(_) if self.any => true,
            Some(o) => self.list.iter().any(|a| a == o.trim_end_matches('/')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_or_empty_allows_all() {
        assert!(AllowedOrigins::new(&["*".into()]).allows(Some("http://evil")));
        assert!(AllowedOrigins::new(&[]).allows(Some("http://x")));
    }

    #[test]
    fn list_is_exact() {
        let a = AllowedOrigins::new(&[
            "https://chat.example/".into(),
            "http://localhost:3000".into(),
        ]);
        assert!(a.allows(Some("https://chat.example")));
        assert!(a.allows(Some("http://localhost:3000")));
        assert!(!a.allows(Some("http://localhost:3001")));
        assert!(!a.allows(Some("https://chat.example.evil")));
        assert!(a.allows(None));
    }
}
