#!/usr/bin/env python3
"""Checks docs/grafana/meridian.json against real data: every PromQL expression
(panels and template variables) must use only metric names present in the given
raw scrapes of nodes' /metrics, must be accepted by the Prometheus at PROM_URL,
and should return at least one series ($region and $tenant are replaced by .*,
$__rate_interval by 1m).

  python3 docs/grafana/check_dashboard.py docs/grafana/meridian.json \
      http://127.0.0.1:9191 scrape-*.txt
"""
import json
import re
import sys
import urllib.parse
import urllib.request


def main(dashboard, prom_url, scrapes):
    scraped = set()
    for path in scrapes:
        with open(path) as f:
            for line in f:
                if line.startswith("meridian_"):
                    scraped.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    with open(dashboard) as f:
        d = json.load(f)
    exprs = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    exprs += [("var " + v["name"], v["definition"])
              for v in d["templating"]["list"] if v.get("definition")]
    bad = 0
    for title, expr in exprs:
        names = set(re.findall(r"\bmeridian_[a-z_]+", expr))
        missing = names - scraped
        query = (expr.replace("$__rate_interval", "1m")
                 .replace("$region", ".*").replace("$tenant", ".*"))
        variable = re.match(r"label_values\((.*), (\w+)\)$", query)
        if variable:
            query = variable.group(1)
        url = prom_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        answer = json.load(urllib.request.urlopen(url))
        series = len(answer["data"]["result"]) if answer["status"] == "success" else "ERROR"
        ok = not missing and series not in ("ERROR", 0)
        bad += not ok
        note = f"  MISSING {sorted(missing)}" if missing else ""
        print(f"{'OK ' if ok else 'BAD'} series={series:<3} {title}: {', '.join(sorted(names))}{note}")
    print(f"{len(exprs)} expressions, {bad} bad; meridian_* names in the scrapes: {len(scraped)}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
