#!/usr/bin/env python3
"""Generate a synthetic category database in the squidGuard / UT1 layout.

    gen_catdb.py --out DIR [--domains 5000000] [--categories 60] [--seed 1]
                 [--samples N] [--urlhaus FILE] [--urlhaus-rows N]
                 [--hosts FILE] [--hosts-rows N]

DIR gets one folder per category, each with a `domains` file, most with a `urls` file and a
few with an `expressions` file. Names are deterministic pseudo-random words over many top-level
domains, including multi-label public suffixes (co.uk, com.au, ...); some entries are
subdomains ("www.", "cdn.", ...) and about 2% of domains are listed in a second category.
Category sizes are skewed like real lists (a few very large categories, many small ones).

--samples N writes DIR/samples.tsv: N lines "kind<TAB>entry<TAB>category" (kind is `domain`
or `url`), entries known to be in that category, for tests and benchmarks.
--urlhaus FILE writes a URLhaus-style CSV dump (comment header, quoted fields).
--hosts FILE writes a hosts-format blocklist.

Standard library only; about 15 s for 5 million domains.
"""

import argparse
import os
import random
import sys

CATEGORY_NAMES = [
    "adult", "gambling", "social_networks", "news", "malware", "phishing", "ads", "dating",
    "drugs", "weapons", "violence", "hacking", "warez", "games", "shopping", "sports",
    "finance", "banking", "webmail", "chat", "forums", "blogs", "audio_video", "radio",
    "streaming", "download", "filehosting", "translation", "remote_control", "vpn",
    "anonymizer", "cryptojacking", "cryptocurrency", "jobsearch", "lingerie", "mixed_adult",
    "sexual_education", "associations", "educational_games", "cooking", "celebrity", "manga",
    "marketingware", "press", "redirector", "shortener", "update", "sect", "child",
    "dangerous_material", "doh", "fakenews", "hate", "astrology", "lottery", "mobile_phone",
    "travel", "health", "religion", "government", "education", "real_estate", "automotive",
    "fashion", "music", "search_engines", "weather", "hobbies", "politics", "science",
]

# Weighted top-level suffixes; none has ICANN rules below it for the generated label shapes.
TLDS = [
    ("com", 300), ("net", 60), ("org", 50), ("info", 20), ("biz", 8), ("de", 40), ("fr", 25),
    ("nl", 15), ("ru", 30), ("es", 10), ("be", 6), ("ch", 6), ("at", 5), ("cz", 5), ("se", 5),
    ("dk", 4), ("fi", 3), ("xyz", 15), ("top", 10), ("online", 6), ("site", 6), ("club", 4),
    ("shop", 4), ("co.uk", 25), ("org.uk", 5), ("me.uk", 2), ("com.au", 12), ("net.au", 3),
    ("org.au", 2), ("co.nz", 3), ("com.br", 12), ("co.za", 4), ("co.in", 5), ("com.mx", 4),
    ("co.jp", 5), ("com.tr", 4), ("com.ar", 3), ("com.cn", 3), ("com.tw", 2), ("co.kr", 2),
    ("com.sg", 2), ("com.pl", 3), ("eu", 5), ("us", 5), ("ca", 6), ("cn", 5), ("in", 4),
    ("tv", 3), ("cc", 3), ("ws", 1), ("pw", 1), ("su", 1), ("ua", 3), ("ro", 3), ("hu", 2),
    ("gr", 2), ("pt", 2), ("ie", 1), ("vn", 2), ("kz", 1), ("app", 2), ("dev", 1),
]

SYLLABLES = [
    c + v
    for c in ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
              "w", "z", "ch", "sh", "st", "tr", "br", "gl"]
    for v in ["a", "e", "i", "o", "u", "ai", "ou", "an", "er", "on", "ix", "el"]
]  # 288
SUBDOMAINS = ["www", "m", "cdn", "shop", "blog", "img", "mail", "app", "static", "news"]
PATH_WORDS = ["video", "media", "files", "img", "watch", "gallery", "forum", "post", "download",
              "user", "page", "wp-content", "uploads", "2024", "cat", "tag", "view"]

EXPRESSIONS = {
    "adult": [r"(^|[-.])(porn|xxx|sexcam)[a-z0-9-]*\.", r"/(porn|xxx)/"],
    "gambling": [r"(^|[-.])(casino|poker|betting)[a-z0-9-]*\."],
    "phishing": [r"(paypal|appleid|microsoft)[-.][a-z0-9-]*(login|verify|secure)"],
    "warez": [r"/(crack|keygen|serial)s?/"],
    "ads": [r"^(ad|ads|adserver|banners?)[0-9]*\."],
}


def weighted_table(pairs, size=4096):
    """Expands (item, weight) pairs into a list of `size` items for O(1) weighted choice."""
    total = sum(w for _, w in pairs)
    table = []
    for item, w in pairs:
        table.extend([item] * max(1, round(w * size / total)))
    return table


def category_names(n):
    names = CATEGORY_NAMES[:n]
    names += ["category_%d" % i for i in range(len(names), n)]
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--domains", type=int, default=5_000_000)
    ap.add_argument("--categories", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--url-ratio", type=float, default=0.01,
                    help="URL entries per domain entry (default 0.01)")
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--urlhaus", help="also write a URLhaus-style CSV here")
    ap.add_argument("--urlhaus-rows", type=int, default=1000)
    ap.add_argument("--hosts", help="also write a hosts-format file here")
    ap.add_argument("--hosts-rows", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.categories < 1 or args.domains < 0:
        ap.error("--categories must be >= 1 and --domains >= 0")

    rng = random.Random(args.seed)
    cats = category_names(args.categories)
    # Skewed sizes: "adult" about a third of everything, the rest Zipf-like.
    weights = [(i, 1.0 / (i + 1) ** 0.9) for i in range(len(cats))]
    weights[0] = (0, sum(w for _, w in weights[1:]) * 0.5 if len(cats) > 1 else 1.0)
    cat_table = weighted_table(weights, 8192)
    tld_table = weighted_table(TLDS, 8192)
    syl = SYLLABLES
    nsyl = len(syl)

    domains = [[] for _ in cats]
    urls = [[] for _ in cats]
    samples = []
    sample_every = max(1, args.domains // args.samples) if args.samples else 0
    url_every = int(1 / args.url_ratio) if args.url_ratio > 0 else 0
    getrandbits = rng.getrandbits
    ncat = len(cat_table)
    ntld = len(tld_table)

    for i in range(args.domains):
        r = getrandbits(128)
        a = syl[r % nsyl]
        r //= nsyl
        b = syl[r % nsyl]
        r //= nsyl
        shape = r & 15
        r >>= 4
        if shape < 6:
            name = a + b + syl[r % nsyl]
            r //= nsyl
        elif shape < 10:
            name = a + b + str(r % 1000)
            r //= 1000
        elif shape < 12:
            name = a + b + "-" + syl[r % nsyl] + syl[(r >> 9) % nsyl]
            r >>= 18
        else:
            name = a + b + syl[r % nsyl] + str(r % 97)
            r //= nsyl
        tld = tld_table[r % ntld]
        r //= ntld
        domain = name + "." + tld
        if (r & 15) == 0:
            domain = SUBDOMAINS[(r >> 4) % len(SUBDOMAINS)] + "." + domain
        r >>= 8
        c = cat_table[r % ncat]
        r //= ncat
        domains[c].append(domain)
        if (r & 63) == 0 and len(cats) > 1:
            c2 = (c + 1 + (r >> 6) % (len(cats) - 1)) % len(cats)
            domains[c2].append(domain)
        if sample_every and i % sample_every == 0:
            samples.append(("domain", domain, cats[c]))
        if url_every and i % url_every == 7:
            path = "/".join(PATH_WORDS[(r >> (8 + 5 * k)) % len(PATH_WORDS)]
                            for k in range(1 + (r >> 40) % 3))
            url = "%s.%s/%s/%d/" % (name, tld, path, i % 10007)
            urls[c].append(url)
            if sample_every and len(samples) < 2 * args.samples and (i // url_every) % 7 == 0:
                samples.append(("url", url, cats[c]))

    os.makedirs(args.out, exist_ok=True)
    for c, cname in enumerate(cats):
        d = os.path.join(args.out, cname)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "domains"), "w") as f:
            if domains[c]:
                f.write("\n".join(domains[c]))
                f.write("\n")
        if urls[c]:
            with open(os.path.join(d, "urls"), "w") as f:
                f.write("\n".join(urls[c]))
                f.write("\n")
        if cname in EXPRESSIONS:
            with open(os.path.join(d, "expressions"), "w") as f:
                f.write("\n".join(EXPRESSIONS[cname]) + "\n")
    with open(os.path.join(args.out, "VERSION"), "w") as f:
        f.write("gen_catdb seed=%d domains=%d categories=%d\n"
                % (args.seed, args.domains, args.categories))
    if args.samples:
        with open(os.path.join(args.out, "samples.tsv"), "w") as f:
            for kind, entry, cname in samples:
                f.write("%s\t%s\t%s\n" % (kind, entry, cname))

    if args.urlhaus:
        write_urlhaus(args.urlhaus, args.urlhaus_rows, rng)
    if args.hosts:
        write_hosts(args.hosts, args.hosts_rows, rng)
    return 0


def random_host(rng):
    if rng.random() < 0.3:
        return "%d.%d.%d.%d" % (rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255),
                                rng.randint(1, 254))
    name = rng.choice(SYLLABLES) + rng.choice(SYLLABLES) + str(rng.randint(0, 999))
    return name + "." + rng.choice(TLDS)[0]


def write_urlhaus(path, rows, rng):
    threats = ["malware_download"]
    tags = ["elf,mirai", "exe,AgentTesla", "doc,emotet", "32-bit,arm,elf", "zip"]
    with open(path, "w") as f:
        f.write("#" * 64 + "\n")
        f.write("# URLhaus-style database dump (CSV), generated by gen_catdb.py\n")
        f.write("#\n")
        f.write("# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n")
        for i in range(rows):
            uid = 3000000 + i
            host = random_host(rng)
            port = ":%d" % rng.choice([8080, 81, 3000, 5555]) if rng.random() < 0.3 else ""
            scheme = "https" if rng.random() < 0.2 else "http"
            url = "%s://%s%s/%s/%s" % (scheme, host, port, rng.choice(PATH_WORDS),
                                       rng.choice(["x.arm7", "bins.sh", "invoice.doc",
                                                   "setup.exe", "i.php?id=%d" % i]))
            status = "online" if rng.random() < 0.25 else "offline"
            day = "2024-%02d-%02d %02d:%02d:00" % (rng.randint(1, 12), rng.randint(1, 28),
                                                   rng.randint(0, 23), rng.randint(0, 59))
            f.write('"%d","%s","%s","%s","%s","%s","%s","https://urlhaus.abuse.ch/url/%d/",'
                    '"reporter%d"\n' % (uid, day, url, status, day if status == "online" else "",
                                        threats[0], rng.choice(tags), uid, i % 13))


def write_hosts(path, rows, rng):
    with open(path, "w") as f:
        f.write("# hosts-format blocklist generated by gen_catdb.py\n")
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n\n")
        i = 0
        while i < rows:
            n = 1 + (rng.random() < 0.1)
            names = []
            for _ in range(n):
                h = random_host(rng)
                while h[-1].isdigit():
                    h = random_host(rng)
                names.append(h)
            addr = "0.0.0.0" if rng.random() < 0.7 else "127.0.0.1"
            comment = "  # tracker" if rng.random() < 0.05 else ""
            f.write("%s %s%s\n" % (addr, " ".join(names), comment))
            i += n


if __name__ == "__main__":
    sys.exit(main())
