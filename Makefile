# The project's two commands: `make serve` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test serve cluster lint typecheck chromium netlab nginx haproxy redis janus venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "tavkit needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian's chromium drives the real-browser tests; Playwright's own download cannot work here.
# A CJK font lets screenshots of the Chinese UI show text instead of empty boxes.
CHROMIUM_PKGS := chromium fonts-wqy-zenhei nodejs
chromium:
	@dpkg -s $(CHROMIUM_PKGS) >/dev/null 2>&1 || { \
		echo "installing $(CHROMIUM_PKGS) from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(CHROMIUM_PKGS); }

# The NAT lab (tests/netlab) builds network namespaces with iproute2 and nftables and
# runs its own coturn on lab addresses; the service the package enables is stopped.
NETLAB_PKGS := coturn nftables iproute2
netlab:
	@dpkg -s $(NETLAB_PKGS) >/dev/null 2>&1 || { \
		echo "installing $(NETLAB_PKGS) from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(NETLAB_PKGS) && \
		{ $$SUDO systemctl disable --now coturn >/dev/null 2>&1 || \
		  $$SUDO service coturn stop >/dev/null 2>&1 || true; }; }

# tests/deploy runs docs/deploy/nginx.conf in an nginx of its own (free ports, files in
# a temporary directory); the service the package enables is stopped.
nginx:
	@dpkg -s nginx >/dev/null 2>&1 || { \
		echo "installing nginx from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx && \
		{ $$SUDO systemctl disable --now nginx >/dev/null 2>&1 || \
		  $$SUDO service nginx stop >/dev/null 2>&1 || true; }; }

# tests/deploy/test_cluster.py runs docs/deploy/haproxy.cfg in a haproxy of its own in
# front of tavkit replicas; the service the package enables is stopped.
haproxy:
	@dpkg -s haproxy >/dev/null 2>&1 || { \
		echo "installing haproxy from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy && \
		{ $$SUDO systemctl disable --now haproxy >/dev/null 2>&1 || \
		  $$SUDO service haproxy stop >/dev/null 2>&1 || true; }; }

# tests/deploy/test_cluster_redis.py kills and restarts a redis-server of its own (a free
# port, a temporary directory); the machine's Redis on 6379 is left alone.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; }

# tests/sfu runs Janus (the SFU of SFU rooms) from a folder `tavkit janus config` writes,
# on free ports; the service the package enables is stopped.
janus:
	@dpkg -s janus >/dev/null 2>&1 || { \
		echo "installing janus from Debian"; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq janus && \
		{ $$SUDO systemctl disable --now janus >/dev/null 2>&1 || \
		  $$SUDO service janus stop >/dev/null 2>&1 || true; }; }

lint: venv
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: venv
	$(VENV)/bin/mypy

# The suite in two runs (see SERIAL_FOLDERS in tests/conftest.py): first everything but
# the `serial` tests in two processes at once, then the serial ones alone. Both runs
# always run, and `make test` fails if either did. A plain `pytest` runs it all serially.
test: venv chromium netlab nginx haproxy redis janus lint typecheck
	@$(VENV)/bin/pytest -n 2 --dist loadfile -m "not serial"; parallel=$$?; \
	$(VENV)/bin/pytest -m serial; serial=$$?; \
	echo "make test: parallel run exit $$parallel, serial run exit $$serial"; \
	test $$parallel = 0 && test $$serial = 0

serve: venv
	$(VENV)/bin/tavkit serve --demo --host 127.0.0.1 --port 8080

# Three demo replicas behind HAProxy on this machine's PostgreSQL and Redis (a schema and
# a channel prefix of their own); prints the URL, Ctrl-C stops everything.
CLUSTER_DATABASE ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
CLUSTER_REDIS ?= redis://127.0.0.1:6379/0
cluster: venv haproxy
	$(VENV)/bin/tavkit cluster --database-url $(CLUSTER_DATABASE) --redis-url $(CLUSTER_REDIS) \
		--database-schema tavkit_cluster --redis-prefix tavkit-cluster: --port 8090

# Rewrites its sections of bench/RESULTS.md; run on an otherwise idle machine.
bench: venv chromium netlab haproxy janus
	$(PY) bench/ttff_python.py --phases
	$(PY) bench/ttff_browser.py --phases
	$(PY) bench/relay.py
	$(PY) bench/capacity.py
	$(PY) bench/detect.py
	$(PY) bench/resume.py
	$(PY) bench/recording_cpu.py
	$(PY) bench/network.py
	$(PY) bench/network_browser.py
	$(PY) bench/cluster.py
	$(PY) bench/cluster.py --scaling
	$(PY) bench/sfu.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info
