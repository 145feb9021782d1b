"""``docvlm report``: one self-contained HTML page per run (or per comparison of runs).

Reads run folders only (config, env, logs, metrics, predictions, data check, retention, sweep
table) and never trains or predicts; training code never imports this package. The page makes no
network request: plots are inline SVG (matplotlib), line images are embedded as base64 PNG, styles
are inline.
"""
