"""The Asterisk bench: a real Asterisk 22 and SIPp peers for tests, demo and benchmark.

Asterisk 22 and SIPp 3.8 come from Debian unstable; Debian 12 has no Asterisk
package, so the bench builds a small Debian-unstable root beside the system
(debootstrap), caches it, and runs Asterisk and SIPp inside it with chroot.
See ``root.py`` (the cached root), ``asterisk.py`` (one Asterisk process with
the project's ``asterisk_conf/`` plus a test overlay) and ``sipp.py`` (SIP
peers that record every message they see). Needs root.
"""
