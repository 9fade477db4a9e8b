# Convenience wrappers; the scripts are the source of truth (they run on a
# fresh Debian 12 machine where make may not be installed yet).
.PHONY: setup demo test bench
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
