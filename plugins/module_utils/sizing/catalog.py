"""Instance-type catalogs: one provider-neutral record per type, the bandwidth rules that turn a
cloud's description into a baseline, the candidate filter, prices, and a per-run cache.

A *record* is what a fetcher returns (plain JSON, cacheable)::

    {"name", "family", "vcpus", "memory_mb", "architectures", "burstable", "shared_cpu",
     "baseline_gbps" (None when the cloud gives none), "peak_gbps", "network_performance",
     "zones"}

A *candidate* is a record the sizing can use, with ``baseline_gbps``, ``internet_gbps``,
``bandwidth_rule`` and ``price`` filled in.
"""

import fnmatch
import hashlib
import json
import os
import re
import tempfile
import time

from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.model import LARGEST_FIGURE, finite_positive

UP_TO = re.compile(r"^Up to ([0-9.]+) Gigabit$")
FIXED = re.compile(r"^([0-9.]+) Gigabit$")
MULTI = re.compile(r"^([0-9]+)x ([0-9.]+) Gigabit$")
DEFAULT_ARCHITECTURES = ("x86_64", "arm64")

# The process-wide half of the per-run cache: one fetch per (provider, region, endpoint, ...).
_MEMORY_CACHE = {}


def ec2_bandwidth(record, calib):
    """(baseline Gbit/s, rule used) for an EC2 type."""
    if record.get("baseline_gbps"):
        return float(record["baseline_gbps"]), "BaselineBandwidthInGbps"
    perf = (record.get("network_performance") or "").strip()
    match = UP_TO.match(perf)
    if match:
        share = calib["ec2_up_to_baseline_fraction"]
        return (float(match.group(1)) * share,
                f"assumed {share} of '{perf}' (no baseline published)")
    match = FIXED.match(perf)
    if match:
        return float(match.group(1)), f"NetworkPerformance '{perf}'"
    match = MULTI.match(perf)
    if match:
        return float(match.group(1)) * float(match.group(2)), f"NetworkPerformance '{perf}'"
    named = calib["ec2_named_performance_gbps"]
    if perf in named:
        return float(named[perf]), f"assumed {named[perf]} Gbit/s for '{perf}'"
    return 0.0, f"unknown NetworkPerformance '{perf}'"


def ec2_internet(vcpus, baseline, calib):
    if vcpus >= calib["ec2_internet_large_vcpus"]:
        return baseline * calib["ec2_internet_large_fraction"]
    return min(baseline, calib["ec2_internet_small_gbps"])


def gce_series(name):
    return name.split("-", 1)[0]


def gce_bandwidth(record, calib):
    series = gce_series(record["name"])
    cap = calib["gce_series_cap_gbps"].get(series, calib["gce_default_cap_gbps"])
    baseline = min(record["vcpus"] * calib["gce_gbps_per_vcpu"], cap)
    return float(baseline), f"assumed {calib['gce_gbps_per_vcpu']} Gbit/s per vCPU, {series} cap {cap}"


def to_candidate(record, provider, calib):
    itype = dict(record)
    if provider == "aws":
        baseline, rule = ec2_bandwidth(record, calib)
        internet = ec2_internet(record["vcpus"], baseline, calib)
    elif provider == "gce":
        baseline, rule = gce_bandwidth(record, calib)
        internet = min(baseline, calib["gce_internet_gbps"])
    else:
        baseline, rule = float(record["baseline_gbps"]), "catalog"
        internet = float(record.get("internet_gbps") or baseline)
    if record["name"] in calib["bandwidth_gbps"]:
        baseline, rule = float(calib["bandwidth_gbps"][record["name"]]), "calibration.bandwidth_gbps override"
    itype["baseline_gbps"] = baseline
    itype["internet_gbps"] = internet
    itype["bandwidth_rule"] = rule
    return itype


def static_records(entries):
    """Records from a catalog the operator wrote (bare metal, or a cloud this module cannot ask)."""
    records = []
    seen = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SizingError(f"catalog[{index}] must be a mapping with name, vcpus, memory_mb, "
                              "baseline_gbps")
        missing = [f for f in ("name", "vcpus", "memory_mb", "baseline_gbps") if entry.get(f) in (None, "")]
        if missing:
            raise SizingError(f"catalog[{index}] ({entry.get('name', '?')}) lacks {', '.join(missing)}")
        for field in ("vcpus", "memory_mb", "baseline_gbps", "internet_gbps"):
            value = entry.get(field)
            if value is not None and not _positive_number(value):
                raise SizingError(f"catalog[{index}] ({entry['name']}): {field} must be a number greater "
                                  f"than 0 (got {value!r})")
        name = str(entry["name"])
        if name in seen:
            raise SizingError(f"catalog[{index}] repeats the name {name!r} of catalog[{seen[name]}]; each "
                              "instance type must appear once (prices are looked up by name)")
        seen[name] = index
        records.append({
            "name": name,
            "family": str(entry.get("family") or re.split(r"[.-]", name, maxsplit=1)[0]),
            "vcpus": entry["vcpus"],
            "memory_mb": entry["memory_mb"],
            "architectures": list(entry.get("architectures") or ["x86_64"]),
            "burstable": bool(entry.get("burstable", False)),
            "shared_cpu": bool(entry.get("shared_cpu", False)),
            "baseline_gbps": entry["baseline_gbps"],
            "peak_gbps": entry.get("peak_gbps"),
            "internet_gbps": entry.get("internet_gbps"),
            "network_performance": entry.get("network_performance", ""),
            "zones": list(entry.get("zones") or []),
        })
    return records


def _positive_number(value):
    return finite_positive(value)


def family_matches(record, patterns):
    return any(fnmatch.fnmatchcase(record["family"], p) or fnmatch.fnmatchcase(record["name"], p)
               for p in patterns)


def select_candidates(records, provider, calib, families=None, architectures=DEFAULT_ARCHITECTURES,
                      prices=None, unpriced="fail", region=""):
    """(candidates, summary): the types the optimiser may use, each with a price.

    Burstable (EC2 T-class) and shared-core (GCE e2-micro/small/medium, f1, g1) types are
    left out: their sustained CPU is a fraction of the vCPUs they show.
    """
    blank = [index for index, pattern in enumerate(families or []) if not str(pattern).strip()]
    if blank:
        raise SizingError(f"families[{blank[0]}] is empty; give family patterns such as c6i or n2-highcpu-*, "
                          "or leave families out to allow every family")
    summary = {"types_fetched": len(records), "excluded_burstable_or_shared": 0,
               "excluded_architecture": 0, "excluded_family": 0, "excluded_no_bandwidth": 0,
               "skipped_unpriced": []}
    kept = []
    for record in records:
        if record.get("burstable") or record.get("shared_cpu"):
            summary["excluded_burstable_or_shared"] += 1
        elif not set(record.get("architectures") or []) & set(architectures):
            summary["excluded_architecture"] += 1
        elif families and not family_matches(record, families):
            summary["excluded_family"] += 1
        else:
            itype = to_candidate(record, provider, calib)
            if itype["baseline_gbps"] <= 0:
                summary["excluded_no_bandwidth"] += 1
            else:
                kept.append(itype)
    if not kept:
        present = sorted({r["family"] for r in records})
        shown = ", ".join(present[:40]) + (" ..." if len(present) > 40 else "")
        raise SizingError(
            f"no instance type in region '{region}' matches families [{', '.join(families or ['*'])}] and "
            f"architectures [{', '.join(architectures)}] ({len(records)} types fetched; families present: "
            f"{shown}); change families or architectures")
    prices = check_prices(prices or {})
    priced, missing = [], []
    for itype in kept:
        if itype["name"] in prices:
            itype["price"] = prices[itype["name"]]
            priced.append(itype)
        else:
            missing.append(itype["name"])
    missing.sort()
    if missing and unpriced == "fail":
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise SizingError(
            f"no price for {len(missing)} candidate instance type(s): {shown}; add them to prices, "
            "narrow families, or set unpriced=skip to leave them out")
    summary["skipped_unpriced"] = missing
    if not priced:
        some = ", ".join(sorted(i["name"] for i in kept)[:20])
        raise SizingError(f"none of the {len(kept)} candidate instance types has a price; "
                          f"add prices for some of: {some}")
    summary["candidates"] = len(priced)
    priced.sort(key=lambda i: i["name"])
    return priced, summary


def check_prices(prices):
    if not isinstance(prices, dict):
        raise SizingError("prices must be a mapping of instance type to hourly price")
    checked = {}
    for name, price in prices.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            try:
                price = float(price)
            except (TypeError, ValueError):
                raise SizingError(f"prices.{name} must be a number (got {price!r})") from None
        if price <= 0:
            raise SizingError(f"prices.{name} must be greater than 0 (got {price})")
        if not finite_positive(price):
            raise SizingError(f"prices.{name} must be a finite number up to {LARGEST_FIGURE:g} (got {price})")
        checked[str(name)] = float(price)
    return checked


def cache_key(**parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


CACHE_WRITER = "itsp.cluster.instance_size"


def _read_cache(cache_path):
    """The stored cache, {} when there is none, or SizingError when the path holds something else.

    A file is ours when it is the JSON this module writes (``written_by``, or the older layout of
    exactly key, fetched_at and records); anything else is refused rather than overwritten."""
    if "\x00" in cache_path:
        raise SizingError(f"catalog_cache must be a file path without NUL characters, got {cache_path!r}")
    if not os.path.lexists(cache_path):
        return {}
    refuse = (f"catalog_cache {cache_path} exists and is not a catalog cache written by instance_size; "
              "refusing to overwrite it: remove it or choose another catalog_cache path")
    if not os.path.isfile(cache_path) or os.path.islink(cache_path):
        raise SizingError(refuse.replace("exists and is not", "is not a regular file, so not"))
    try:
        with open(cache_path, "rb") as handle:
            stored = json.loads(handle.read(64 * 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, UnicodeDecodeError):
            raise SizingError(f"catalog_cache {cache_path} cannot be read: {exc.strerror or exc}") from None
        raise SizingError(refuse) from None
    ours = isinstance(stored, dict) and isinstance(stored.get("records"), list) and isinstance(stored.get("key"), str) \
        and isinstance(stored.get("fetched_at"), (int, float)) \
        and (stored.get("written_by") == CACHE_WRITER or set(stored) == {"key", "fetched_at", "records"})
    if not ours:
        raise SizingError(refuse)
    return stored


def cached_records(key, fetch, cache_path=None, max_age=3600, now=time.time, check_mode=False, outcome=None):
    """Records from the in-process cache, else from ``cache_path`` if fresh, else from fetch().

    Returns (records, where) with where in {"memory", "file", "api"}. After a fetch the file is
    written (atomically: a temporary file in the same directory, then a rename) unless
    ``check_mode``; a file that is not one of this module's caches is never replaced. ``outcome``
    (a dict) receives ``cache``: C(written), C(would write), C(read) or C(not used)."""
    outcome = outcome if outcome is not None else {}
    outcome["cache"] = "not used"
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key], "memory"
    stored = _read_cache(cache_path) if cache_path else {}
    if stored and stored.get("key") == key and now() - stored.get("fetched_at", 0) <= max_age:
        _MEMORY_CACHE[key] = stored["records"]
        outcome["cache"] = "read"
        return stored["records"], "file"
    records = fetch()
    _MEMORY_CACHE[key] = records
    if cache_path and check_mode:
        outcome["cache"] = "would write"
    elif cache_path:
        _write_cache(cache_path, {"written_by": CACHE_WRITER, "key": key, "fetched_at": now(), "records": records})
        outcome["cache"] = "written"
    return records, "api"


def _write_cache(cache_path, content):
    directory = os.path.dirname(os.path.abspath(cache_path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=".catalog-")
        with os.fdopen(handle, "w") as out:
            json.dump(content, out)
        os.replace(tmp, cache_path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise SizingError(f"catalog_cache {cache_path} cannot be written: {exc.strerror or exc}") from None


def clear_memory_cache():
    _MEMORY_CACHE.clear()
