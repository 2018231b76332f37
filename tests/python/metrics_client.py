"""Reads gguf-serve's /metrics with the official `prometheus_client` parser, as a Prometheus
scrape would, after one completion; exits non-zero on any mismatch.

Run by tests/metrics_client.rs with the server's base URL.
"""

import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main(base_url: str) -> None:
    body = b'{"prompt": "Hello", "n_predict": 4, "temperature": 0}'
    req = urllib.request.Request(f"{base_url}/completion", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    with urllib.request.urlopen(f"{base_url}/metrics") as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text"), r.headers
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in [
        ("llamacpp:prompt_tokens", "counter"),
        ("llamacpp:tokens_predicted", "counter"),
        ("llamacpp:n_decode", "counter"),
        ("llamacpp:requests_processing", "gauge"),
        ("llamacpp:n_busy_slots_per_decode", "gauge"),
        ("gguf_serve_load_seconds", "gauge"),
        ("gguf_serve_plan_info", "gauge"),
        ("gguf_serve_memory_allocated_bytes", "gauge"),
    ]:
        assert name in families, (name, sorted(families))
        assert families[name].type == kind, (name, families[name].type)
    value = lambda name: families[name].samples[0].value
    assert value("llamacpp:tokens_predicted") == 4, families["llamacpp:tokens_predicted"]
    assert value("llamacpp:n_decode") >= 4
    assert value("gguf_serve_load_seconds") > 0
    plan = families["gguf_serve_plan_info"].samples[0].labels
    assert plan["quant"] == "Q4_K_M", plan
    devices = {s.labels["device"] for s in families["gguf_serve_memory_allocated_bytes"].samples}
    assert "host" in devices, devices
    print("metrics client: ok")


if __name__ == "__main__":
    main(sys.argv[1])
