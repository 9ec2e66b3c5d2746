#!/usr/bin/env python3
"""Generate a large, realistic policy for the policy benchmarks (bench/policy_bench.cpp and
the "with policy" case of bench/run.sh).

    gen_policy.py --out DIR [--domains 5000000] [--rules 10000] [--facts 200000] [--seed 7]

DIR gets:
  ut1/          a squidGuard / UT1 category database from tools/gen_catdb.py (--domains
                domains, 60 categories, ut1/samples.tsv with 100,000 known entries)
  urlhaus.csv   a URLhaus-style reputation feed (20,000 rows)
  policy.toml   --rules rules over a mix of conditions (below); [default] action = "allow"
  facts.tsv     --facts transactions to decide (see FACT_COLUMNS), for policy_bench
  STAMP         the parameters; a later call with the same ones reuses DIR as it is

Rules (10,000 by default), most of which do not match a given transaction:
  30% domain lists or literal domains (+ source, groups, schedule or methods on some),
  15% host-bound URL prefixes, 22% categories with a source, groups or schedule,
  5% categories with URL keywords / RE2 expressions, 10% users, 8% groups, 5% ports,
  3% neither (source + methods / headers / schedule / listener / guest: checked on every
  decision), 2% response phase (content types, file types); 1% are disabled.
Objects: 150 IP groups (10.0-10.199.x, 172.16/12, 192.168/16, fd00::/8), 400 domain lists,
150 URL lists, 20 custom categories, 12 schedules, 30 header filters, approved and blocked
lists.

The proxy benchmark requests http://127.0.0.1:<port>/ from 127.0.0.1 with no user: nothing
here matches that (no CIDR covers 127.0.0.0/8, no domain is an IP address, no port rule
reaches above 9999, header-only rules also need a source), so it is decided by the default
(allow) after the unindexed rules have been checked.

Facts (transactions): 40% hosts from the database samples (some under a subdomain), 5% URL
samples, 45% random hosts listed nowhere, 10% hosts named by the policy's own domain and URL
lists; 60% with a user and 1-3 groups; clients in the IP groups' networks (70%) or outside
them; GET / POST / CONNECT / HEAD / PUT; times spread over one week.

Standard library only.
"""

import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_CATDB = os.path.join(HERE, "..", "tools", "gen_catdb.py")
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import gen_catdb  # noqa: E402

FACT_COLUMNS = ["client", "user", "groups", "method", "scheme", "host", "port", "path",
                "user_agent", "content_length", "time", "kind"]

WORDS = ["portal", "intranet", "crm", "files", "vendor", "partner", "cloud", "help", "docs",
         "shop", "media", "learn", "status", "api", "mail", "sso", "hr", "payroll", "wiki",
         "tickets", "build", "repo", "assets", "travel", "bank", "news", "video", "games",
         "chat", "meet", "survey", "forms", "analytics", "cdn", "download", "support"]
TLDS = ["com", "com", "com", "net", "org", "io", "de", "co.uk", "fr", "nl", "com.au", "jp"]
PATH_WORDS = ["app", "login", "dashboard", "reports", "files", "static", "js", "img", "v1",
              "v2", "search", "watch", "embed", "upload", "download", "account", "settings"]
CATEGORIES = gen_catdb.category_names(60)
ACTIONS = ["block"] * 40 + ["allow"] * 25 + ["warn"] * 10 + ["monitor"] * 15 + \
          ["allow_no_scan"] * 10
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15",
    "Microsoft-CryptoAPI/10.0", "Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50",
    "curl/8.5.0", "python-requests/2.32.3", "Wget/1.21.3", "Zoom/6.2.0",
]


def q(s):
    return json.dumps(s)  # a TOML basic string (ASCII)


def lit(s):
    assert "'" not in s
    return "'" + s + "'"


def arr(items, f=q):
    return "[" + ", ".join(f(x) for x in items) + "]"


class Gen:
    def __init__(self, rng, samples):
        self.rng = rng
        self.samples = samples  # [(kind, entry, category)]
        self.used_domains = []  # policy-named hosts, for facts
        self.used_urls = []

    def fresh_domain(self):
        r = self.rng
        return "%s%d.%s" % (r.choice(WORDS), r.randrange(100000), r.choice(TLDS))

    def sample_domain(self):
        while True:
            kind, entry, _ = self.rng.choice(self.samples)
            if kind == "domain":
                return entry

    def domain_entry(self):
        r = self.rng
        d = self.sample_domain() if r.random() < 0.4 else self.fresh_domain()
        self.used_domains.append(d)
        x = r.random()
        if x < 0.7:
            return d
        if x < 0.9:
            self.used_domains[-1] = "www." + d
            return "." + d
        return "=" + d

    def url_entry(self):
        r = self.rng
        if r.random() < 0.3:
            kind, entry, _ = r.choice(self.samples)
            host = entry.split("/", 1)[0]
        else:
            host = self.fresh_domain()
        path = "/" + "/".join(r.choice(PATH_WORDS) for _ in range(r.randint(1, 3)))
        self.used_urls.append((host, path))
        x = r.random()
        if x < 0.1:
            return "https://" + host + path
        if x < 0.15:
            return "=" + host + path + "?id=%d" % r.randrange(1000)
        return host + path + "/"


def cidr(rng):
    x = rng.random()
    if x < 0.6:
        plen = rng.choice([16, 20, 22, 24, 24, 24, 28, 32])
        net = ipaddress.ip_network("10.%d.%d.%d/%d" % (rng.randrange(200), rng.randrange(256),
                                                       rng.randrange(256), plen), strict=False)
    elif x < 0.8:
        plen = rng.choice([16, 20, 24])
        net = ipaddress.ip_network("172.%d.%d.0/%d" % (rng.randrange(16, 32), rng.randrange(256),
                                                       plen), strict=False)
    elif x < 0.92:
        net = ipaddress.ip_network("192.168.%d.0/24" % rng.randrange(256))
    else:
        net = ipaddress.ip_network("fd%02x:%x:%x::/48" % (rng.randrange(256), rng.randrange(65536),
                                                          rng.randrange(65536)))
    return str(net) if net.prefixlen != net.max_prefixlen else str(net.network_address)


def write_policy(path, args, samples, rng):
    g = Gen(rng, samples)
    L = []
    w = L.append
    w("# Generated by bench/gen_policy.py (seed %d): %d rules over a %d-domain database."
      % (args.seed, args.rules, args.domains))
    w("# A benchmark input, not an example to copy.\n")
    w("[settings]\ntime_zone = \"Europe/Berlin\"\nwarn_duration = 1800\n"
      "reputation_sensitivity = \"medium\"\n")
    w("[lists]")
    w("approved = " + arr([g.domain_entry().lstrip("=.") for _ in range(150)] +
                          [g.url_entry().lstrip("=").replace("https://", "") for _ in range(50)]))
    w("blocked = " + arr([g.domain_entry().lstrip("=.") for _ in range(400)] +
                         [g.url_entry().lstrip("=").replace("https://", "") for _ in range(100)]))
    w("")

    ip_groups = ["net-%03d" % i for i in range(150)]
    for name in ip_groups:
        w("[[ip_groups]]\nname = %s\naddresses = %s\n"
          % (q(name), arr(sorted({cidr(rng) for _ in range(rng.randint(1, 4))}))))
    dlists = ["sites-%03d" % i for i in range(400)]
    for name in dlists:
        n = rng.choice([5, 10, 20, 30, 50, 100])
        w("[[domain_lists]]\nname = %s\ndomains = %s\n"
          % (q(name), arr(sorted({g.domain_entry() for _ in range(n)}))))
    ulists = ["urls-%03d" % i for i in range(140)]
    for name in ulists:
        w("[[url_lists]]\nname = %s\nurls = %s\n"
          % (q(name), arr(sorted({g.url_entry() for _ in range(rng.randint(5, 40))}))))
    kw = ["*crack*", "*keygen*", "*torrent*", "*warez*", "*serial*", "*.apk*", "*casino*",
          "*free-download*", "*/wp-login.php*", "*token=*"]
    res = [r"re:^https?://[^/]+/.*\.(exe|msi|scr|bat)(\?|$)", r"re:(?i)/(admin|phpmyadmin)/",
           r"re:^http://[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+)?/.*\.(sh|bin)$",
           r"re:[?&](cmd|exec)=", r"re:(?i)\.(zip|rar|7z)$"]
    scan_lists = ["patterns-%02d" % i for i in range(10)]
    for i, name in enumerate(scan_lists):
        pats = rng.sample(kw, 3) + ([res[i % len(res)]] if i % 2 == 0 else [])
        w("[[url_lists]]\nname = %s\nurls = %s\n" % (q(name), arr(pats, lit)))
    custom = ["custom-%02d" % i for i in range(20)]
    for name in custom:
        w("[[categories]]\nname = %s\ndomains = %s\nurls = %s\n"
          % (q(name), arr(sorted({g.domain_entry().lstrip("=.") for _ in range(rng.randint(5, 20))})),
             arr(sorted({g.url_entry().lstrip("=").replace("https://", "").split("?")[0]
                         for _ in range(3)}))))
    schedules = {
        "office-hours": ('["mon-fri"]', '["08:00-12:00", "13:00-18:00"]'),
        "lunch": ('["mon-fri"]', '["12:00-13:00"]'),
        "after-hours": ('["mon-fri"]', '["18:00-08:00"]'),
        "weekend": ('["sat", "sun"]', None),
        "night": (None, '["22:00-06:00"]'),
        "early": ('["mon-fri"]', '["06:00-08:00"]'),
        "fri-afternoon": ('["fri"]', '["14:00-18:00"]'),
        "maintenance": ('["sat"]', '["23:00-05:00"]'),
        "exams": ('["mon", "wed"]', '["09:00-11:30"]'),
        "shift-a": ('["mon-thu"]', '["05:30-14:00"]'),
        "shift-b": ('["mon-thu"]', '["13:30-22:00"]'),
        "shop-hours": ('["mon-sat"]', '["09:00-20:00"]'),
    }
    for name, (days, times) in schedules.items():
        w("[[schedules]]\nname = %s" % q(name))
        if days:
            w("days = " + days)
        if times:
            w("times = " + times)
        w("")
    hf = []
    hdefs = [("User-Agent", "regex", lit("^(curl|Wget|python-requests)/")),
             ("User-Agent", "contains", q("bot")), ("User-Agent", "contains", q("MSIE")),
             ("User-Agent", "regex", lit("(?i)(sqlmap|nikto|nmap)")),
             ("User-Agent", "equals", q("Microsoft-CryptoAPI/10.0")),
             ("Content-Length", "greater_than", "104857600"),
             ("Content-Length", "greater_than", "10485760"),
             ("Content-Length", "greater_than", "1073741824"),
             ("Content-Length", "less_than", "16"),
             ("X-Requested-With", "equals", q("XMLHttpRequest")),
             ("Upgrade", "equals", q("websocket")),
             ("Content-Type", "contains", q("multipart/form-data")),
             ("Accept-Language", "contains", q("ru")), ("Accept-Language", "contains", q("zh")),
             ("Referer", "contains", q("google.")), ("Authorization", "contains", q("Basic")),
             ("DNT", "equals", q("1")), ("Sec-Fetch-Mode", "equals", q("navigate")),
             ("Cookie", "contains", q("session=")), ("X-Forwarded-For", "contains", q("10."))]
    for i in range(30):
        h, op, v = hdefs[i % len(hdefs)]
        name = "hdr-%02d" % i
        hf.append(name)
        w("[[header_filters]]\nname = %s\nheader = %s\n%s = %s\n" % (q(name), q(h), op, v))
    w("[[databases]]\nname = \"ut1\"\nversion = \"bench\"\nformat = \"squidguard\"\n"
      "path = \"ut1\"\n")
    w("[[reputation]]\nname = \"urlhaus\"\nformat = \"urlhaus\"\npath = \"urlhaus.csv\"\n")

    users = ["user%05d" % i for i in range(5000)]
    groups = ["grp-%03d" % i for i in range(300)]
    allcats = CATEGORIES + custom
    methods = ["POST", "PUT", "DELETE", "CONNECT", "GET", "HEAD", "PATCH", "OPTIONS"]
    ports = ["21", "25", "8443", "3128", "6660-6669", "1080", "8000-8099", "4444", "993",
             "5222", "1194", "9001", "137-139", "445", "3389"]

    def source():
        if rng.random() < 0.7:
            return arr(rng.sample(ip_groups, rng.randint(1, 3)))
        return arr([cidr(rng) for _ in range(rng.randint(1, 2))])

    def opt(c, p):
        if rng.random() < p:
            c.append(("schedule", q(rng.choice(list(schedules)))))

    kinds = ([("domain", 30), ("url", 15), ("category", 22), ("cat_scan", 5), ("user", 10),
              ("group", 8), ("port", 5), ("other", 3), ("response", 2)])
    table = [k for k, n in kinds for _ in range(n)]
    for i in range(args.rules):
        k = table[i % len(table)] if i < len(table) else rng.choice(table)
        c = []
        if k == "domain":
            if rng.random() < 0.6:
                c.append(("domains", arr(rng.sample(dlists, rng.randint(1, 2)))))
            else:
                c.append(("domains", arr(sorted({g.domain_entry() for _ in range(rng.randint(1, 5))}))))
            if rng.random() < 0.3:
                c.append(("source", source()))
            elif rng.random() < 0.25:
                c.append(("groups", arr(rng.sample(groups, rng.randint(1, 3)))))
            if rng.random() < 0.1:
                c.append(("methods", arr(rng.sample(methods[:4], rng.randint(1, 2)))))
            opt(c, 0.1)
        elif k == "url":
            if rng.random() < 0.3:
                c.append(("urls", arr(rng.sample(ulists, 1))))
            else:
                c.append(("urls", arr(sorted({g.url_entry() for _ in range(rng.randint(1, 4))}))))
            if rng.random() < 0.2:
                c.append(("methods", arr(rng.sample(methods[:3], 1))))
            if rng.random() < 0.2:
                c.append(("source", source()))
        elif k == "category":
            c.append(("categories", arr(rng.sample(allcats, rng.randint(1, 3)))))
            x = rng.random()
            if x < 0.55:
                c.append(("source", source()))
            elif x < 0.9:
                c.append(("groups", arr(rng.sample(groups, rng.randint(1, 3)))))
            else:
                c.append(("users", arr(rng.sample(users, rng.randint(1, 5)))))
            opt(c, 0.3)
            if rng.random() < 0.05:
                c.append(("headers", arr(rng.sample(hf, 1))))
        elif k == "cat_scan":
            c.append(("categories", arr(rng.sample(allcats, rng.randint(1, 2)))))
            c.append(("urls", arr(rng.sample(scan_lists, 1))))
            if rng.random() < 0.5:
                c.append(("groups", arr(rng.sample(groups, rng.randint(1, 2)))))
        elif k == "user":
            c.append(("users", arr(rng.sample(users, rng.randint(1, 5)))))
            x = rng.random()
            if x < 0.4:
                c.append(("methods", arr(rng.sample(methods, rng.randint(1, 2)))))
            elif x < 0.7:
                c.append(("headers", arr(rng.sample(hf, 1))))
            opt(c, 0.5)
        elif k == "group":
            c.append(("groups", arr(rng.sample(groups, rng.randint(1, 3)))))
            x = rng.random()
            if x < 0.3:
                c.append(("source", source()))
            elif x < 0.6:
                c.append(("headers", arr(rng.sample(hf, 1))))
            elif x < 0.8:
                c.append(("methods", arr(rng.sample(methods, 1))))
            opt(c, 0.6)
        elif k == "port":
            c.append(("ports", arr(rng.sample(ports, rng.randint(1, 3)))))
            c.append(("source", source()))
            if rng.random() < 0.3:
                c.append(("methods", arr(["CONNECT"])))
        elif k == "other":
            c.append(("source", source()))
            x = rng.random()
            if x < 0.3:
                c.append(("methods", arr(rng.sample(methods[:4], rng.randint(1, 2)))))
            elif x < 0.6:
                c.append(("headers", arr(rng.sample(hf, rng.randint(1, 2)))))
            elif x < 0.8:
                c.append(("listeners", arr(["guest"])))
            else:
                c.append(("guest", "true"))
            opt(c, 0.5)
        else:  # response phase
            if rng.random() < 0.5:
                c.append(("content_types", arr(rng.choice([["video/*"], ["audio/*"],
                                                          ["application/x-msdownload"],
                                                          ["application/zip", "application/x-rar"]]))))
            else:
                c.append(("file_types", arr(rng.choice([["exe", "msi"], ["zip"], ["iso"],
                                                       ["apk"]]))))
            x = rng.random()
            if x < 0.4:
                c.append(("groups", arr(rng.sample(groups, 2))))
            elif x < 0.8:
                c.append(("source", source()))
            else:
                c.append(("categories", arr(rng.sample(allcats, 2))))
        action = rng.choice(ACTIONS)
        w("[[rules]]\nname = %s" % q("r%05d-%s" % (i + 1, k)))
        if rng.random() < 0.01:
            w("enabled = false")
        w("action = %s" % q(action))
        for key, val in c:
            w("%s = %s" % (key, val))
        w("")
    w("[default]\naction = \"allow\"")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    return g, ip_groups, users, groups


def write_facts(path, args, g, samples, rng, users, groups):
    week0 = 1795996800  # 2026-11-30T00:00:00Z, a Monday
    subs = ["", "", "www.", "m.", "static.cdn."]
    client_nets = [ipaddress.ip_network(n) for n in
                   ["10.0.0.0/9", "10.128.0.0/10", "172.16.0.0/12", "192.168.0.0/16"]]
    outside = ipaddress.ip_network("10.200.0.0/16")
    with open(path, "w") as f:
        f.write("#" + "\t".join(FACT_COLUMNS) + "\n")
        for _ in range(args.facts):
            x = rng.random()
            path_ = "/" + "/".join(rng.choice(PATH_WORDS) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.3:
                path_ += "?q=%d" % rng.randrange(100000)
            if x < 0.40:
                host, kind = rng.choice(subs) + g.sample_domain(), "db_domain"
            elif x < 0.45:
                while True:
                    k, entry, _ = rng.choice(samples)
                    if k == "url":
                        break
                host, rest = entry.split("/", 1)
                path_, kind = "/" + rest + "page/1", "db_url"
            elif x < 0.90:
                host = "%s%s-%d.%s" % (rng.choice(["", "www.", "api."]), rng.choice(WORDS),
                                       rng.randrange(10**6, 10**7), rng.choice(TLDS))
                kind = "unlisted"
            else:
                if rng.random() < 0.6:
                    host = rng.choice(g.used_domains)
                else:
                    host, p = rng.choice(g.used_urls)
                    path_ = p + "/x"
                kind = "policy_listed"
            net = outside if rng.random() < 0.3 else rng.choice(client_nets)
            client = str(net[rng.randrange(1, net.num_addresses - 1)])
            if rng.random() < 0.6:
                user = rng.choice(users)
                grps = ",".join(rng.sample(groups, rng.randint(1, 3)))
            else:
                user, grps = "-", "-"
            m = rng.random()
            method = ("GET" if m < 0.78 else "POST" if m < 0.90 else "CONNECT" if m < 0.98
                      else "HEAD" if m < 0.99 else "PUT")
            scheme, port = "http", (80 if rng.random() < 0.95 else rng.choice([8080, 8000, 81]))
            if method == "CONNECT":
                scheme, port, path_ = "https", (443 if rng.random() < 0.97 else 8443), "/"
            ua = rng.choice(UAS[:4]) if rng.random() < 0.85 else rng.choice(UAS)
            cl = str(rng.choice([512, 40000, 2 << 20, 200 << 20])) if method in ("POST", "PUT") \
                else "-"
            t = week0 + rng.randrange(7 * 86400)
            f.write("\t".join([client, user, grps, method, scheme, host, str(port), path_, ua,
                               cl, str(t), kind]) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--domains", type=int, default=5_000_000)
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--facts", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    stamp = "gen_policy v1 domains=%d rules=%d facts=%d seed=%d\n" % (
        args.domains, args.rules, args.facts, args.seed)
    stamp_file = os.path.join(args.out, "STAMP")
    try:
        with open(stamp_file) as f:
            if f.read() == stamp:
                print("gen_policy: reusing %s" % args.out, file=sys.stderr)
                return 0
    except OSError:
        pass
    os.makedirs(args.out, exist_ok=True)
    if os.path.exists(stamp_file):
        os.remove(stamp_file)
    db = os.path.join(args.out, "ut1")
    if os.path.isdir(db):
        subprocess.check_call(["rm", "-rf", "--", db])
    subprocess.check_call([sys.executable, GEN_CATDB, "--out", db, "--domains",
                           str(args.domains), "--samples", "100000", "--urlhaus",
                           os.path.join(args.out, "urlhaus.csv"), "--urlhaus-rows", "20000"])
    samples = []
    with open(os.path.join(db, "samples.tsv")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                samples.append(tuple(parts))
    if not samples:
        samples = [("domain", "example.com", "news")]
    rng = random.Random(args.seed)
    g, _, users, groups = write_policy(os.path.join(args.out, "policy.toml"), args, samples, rng)
    write_facts(os.path.join(args.out, "facts.tsv"), args, g, samples, rng, users, groups)
    with open(stamp_file, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
