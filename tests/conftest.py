"""Puts the checkout on sys.path as ansible_collections.itsp.cluster for every test, and the checkout
itself, so tests share lab/'s stand-ins the way bench/ does."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run([os.path.join(ROOT, "scripts", "collection-path.sh")], check=True)
COLLECTIONS = os.path.join(ROOT, ".collections")
for path in (ROOT, COLLECTIONS):
    if path not in sys.path:
        sys.path.insert(0, path)
