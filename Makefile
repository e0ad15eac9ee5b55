# The two commands of the README. Each does the whole set-up first.
.PHONY: setup demo test bench clean

setup:
	@scripts/setup.sh

demo: setup
	@.venv/bin/python -m scripts.demo

test: setup
	@scripts/run_tests.sh

bench: setup
	.venv/bin/python bench/tape_throughput.py
	.venv/bin/python bench/dump_restore.py
	.venv/bin/python bench/snapfs_dump.py
	.venv/bin/python bench/ndmp_dump.py
	.venv/bin/python bench/fs_ops.py

clean:
	rm -rf .venv build *.egg-info .pytest_cache .hypothesis demo-work
