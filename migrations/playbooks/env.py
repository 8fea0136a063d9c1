from eventbus.migrate import run_env

run_env("playbooks")
