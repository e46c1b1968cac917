"""`puente lab status` prints each site's Prometheus and Alertmanager URL (from the lab inventory's
`monitoring` group), the stable address the drills' reports and people use."""

from __future__ import annotations

from puente.lab import inventory
from puente.lab.status import monitoring_urls, render


def test_one_prometheus_and_alertmanager_url_per_site():
    urls = monitoring_urls(inventory.load())
    assert urls == [
        {
            "site": "onprem",
            "prometheus": "http://10.89.1.53:9090/",
            "alertmanager": "http://10.89.1.53:9093/",
        },
        {"site": "cloud", "prometheus": "http://10.89.2.41:9090/", "alertmanager": "http://10.89.2.41:9093/"},
    ]
    table = render({"nodes": [], "urls": [], "monitoring": urls})
    assert "prometheus (cloud): http://10.89.2.41:9090/" in table
    assert "alertmanager (onprem): http://10.89.1.53:9093/" in table
