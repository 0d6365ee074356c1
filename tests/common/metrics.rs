//! `/metrics` as Prometheus reads it: the text parsed by a real parser
//! (prometheus-parse), never matched by regex.

use reqwest::blocking::Client;

/// One scrape of a `/metrics` endpoint.
pub struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    /// GETs `url` (200, Prometheus' text content type) and parses it.
    pub fn of(client: &Client, url: &str) -> Self {
        let resp = client.get(url).send().expect("scrape");
        assert_eq!(resp.status(), 200, "{url}");
        let content_type = resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = resp.text().expect("body");
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        Scrape(parsed.samples)
    }

    /// The sum of the samples `name` whose labels include all of `labels`
    /// (0 when there is none, as for a counter never incremented); a
    /// histogram counts its observations.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.metric == name)
    }
}
