"""End to end over HTTP: API + projector + NATS + PostgreSQL."""

from __future__ import annotations

import asyncio

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd

from tests.api.conftest import System
from tests.api.helpers import as_worker, create_project, create_protocol, planned


async def test_projects_create_list_get(system: System) -> None:
    async with system.admin() as admin:
        created = await create_project(admin, "alpha")
        assert created["project_token"].startswith("dfp_")
        assert created["status"] == "registered"
        seq = {"X-Min-Event-Sequence": str(created["_seq"])}
        got = await admin.get(f"/projects/{created['id']}", headers=seq)
        assert got.status_code == 200
        assert got.json()["name"] == "alpha"
        assert "project_token" not in got.json()
        listed = (await admin.get("/projects", headers=seq)).json()
        assert [p["id"] for p in listed["data"]] == [created["id"]]
        assert "token" not in str(listed).lower().replace("tokens", "")
        assert (await admin.get("/projects/nope")).status_code == 404


async def test_protocols_are_numbered_by_the_system(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        first = await create_protocol(admin, project["id"], "Add login page")
        second = await create_protocol(admin, project["id"], "Add login page")
        assert [first["protocol_name"], second["protocol_name"]] == [
            "0001-add-login-page",
            "0002-add-login-page",
        ]
        listed = await admin.get(
            f"/projects/{project['id']}/protocols",
            headers={"X-Min-Event-Sequence": str(second["event_sequence"])},
        )
        assert [p["number"] for p in listed.json()["data"]] == [1, 2]
        assert (await admin.post("/projects/nope/protocols", json={"task_name": "x"})).status_code == 404


async def test_task_names_in_any_script_get_a_transliterated_slug(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        russian = await create_protocol(admin, project["id"], "Добавить вход")
        chinese = await create_protocol(admin, project["id"], "添加登录页面")
        emoji = await create_protocol(admin, project["id"], "🚀")
        punctuation = await create_protocol(admin, project["id"], "!!!")
        assert russian["protocol_name"] == "0001-dobavit-vkhod"
        assert russian["task_name"] == "Добавить вход"
        assert chinese["protocol_name"] == "0002-tianjiadengluyemian"
        assert emoji["protocol_name"] == "0003-rocket"
        assert punctuation["slug"].startswith("task-")
        assert punctuation["protocol_root"] == f".protocols/0004-{punctuation['slug']}"


async def test_run_lifecycle_with_cascade(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, steps, _ = await planned(admin, system.repo, project["id"])
        action = await admin.post(f"/protocols/{run_id}/actions/run_next_step")
        assert action.json()["status"] == "running"
        await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps[0], commit_sha="abc")
        )
        approved = await admin.post(f"/steps/{steps[0]}/actions/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["step_status"] == "completed"
        paused = await admin.post(f"/protocols/{run_id}/actions/pause")
        assert paused.json()["status"] == "paused"
        refused = await admin.post(f"/protocols/{run_id}/actions/run_next_step")
        assert refused.status_code == 409
        assert refused.json()["current_status"] == "paused"
        resumed = await admin.post(f"/protocols/{run_id}/actions/resume")
        assert resumed.json()["status"] == "running"
        await admin.post(f"/protocols/{run_id}/actions/run_next_step")
        cancelled = await admin.post(f"/protocols/{run_id}/actions/cancel")
        assert cancelled.json()["status"] == "cancelled"
        seq = cancelled.headers["X-Event-Sequence"]
        after = (await admin.get(f"/protocols/{run_id}/steps", headers={"X-Min-Event-Sequence": seq})).json()[
            "data"
        ]
        assert [s["status"] for s in after] == ["completed", "cancelled", "cancelled"]
        again = await admin.post(f"/protocols/{run_id}/actions/cancel")
        assert again.status_code == 409
        assert again.json()["current_status"] == "cancelled"
        timeline = (await admin.get(f"/protocols/{run_id}/events")).json()["data"]
        assert timeline[0]["type"] == "protocol_run.created"
        assert timeline[-1]["type"] == "protocol_run.cancelled"


async def test_errors_are_404_409_422_never_500(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        run = await create_protocol(admin, project["id"])
        assert (await admin.post("/protocols/unknown/actions/start")).status_code == 404
        assert (await admin.post(f"/protocols/{run['id']}/actions/explode")).status_code == 422
        assert (await admin.post(f"/protocols/{run['id']}/actions/resume")).json()[
            "current_status"
        ] == "pending"
        assert (await admin.get("/steps/unknown")).status_code == 404
        assert (await admin.post("/projects", json={"git_url": "x"})).status_code == 422
        assert (
            await admin.post("/projects", json={"name": "x", "git_url": "/srv/y.git", "base_branch": "a..b"})
        ).status_code == 422
        assert (
            await admin.post("/projects", json={"name": "x", "git_url": "/srv/y.git", "extra": 1})
        ).status_code == 422
        assert (
            await admin.post("/projects", content=b"{not json", headers={"content-type": "application/json"})
        ).status_code == 422
        bad_task = await admin.post(f"/projects/{project['id']}/protocols", json={"task_name": "   "})
        assert bad_task.status_code == 422
        assert bad_task.json()["code"] == "invalid_request"


async def test_auth_and_project_token_scoping(system: System) -> None:
    async with system.admin() as admin, system.client() as anonymous:
        mine = await create_project(admin, "mine")
        other = await create_project(admin, "other")
        await create_protocol(admin, other["id"])
        other_run = await create_protocol(admin, other["id"])
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        assert (await anonymous.get("/projects")).status_code == 401
        async with system.client(Authorization="Bearer wrong") as wrong:
            assert (await wrong.get("/projects")).status_code == 401
        async with system.client(**{"X-Project-Token": "dfp_wrong"}) as wrong:
            assert (await wrong.get("/projects")).status_code == 401
        seq = {"X-Min-Event-Sequence": str(other_run["event_sequence"])}
        async with system.client(**{"X-Project-Token": mine["project_token"]}) as token:
            listed = (await token.get("/projects", headers=seq)).json()["data"]
            assert [p["id"] for p in listed] == [mine["id"]]
            assert (await token.get(f"/projects/{other['id']}")).status_code == 403
            assert (await token.get(f"/protocols/{other_run['id']}")).status_code == 403
            assert (await token.post(f"/protocols/{other_run['id']}/actions/start")).status_code == 403
            assert (
                await token.post("/projects", json={"name": "n", "git_url": "/srv/u.git"})
            ).status_code == 403
            feed = (await token.get("/events")).json()["data"]
            assert feed
            assert {e["project_id"] for e in feed} == {mine["id"]}
            assert (await token.get("/events", params={"project_id": other["id"]})).status_code == 403
            own = await create_protocol(token, mine["id"])
            assert own["protocol_name"] == "0001-add-login-page"
        revoke = await admin.post(f"/projects/{mine['id']}/tokens/{mine['token_id']}/revoke")
        assert revoke.status_code == 204
        seq = {"X-Min-Event-Sequence": revoke.headers["X-Event-Sequence"]}
        await admin.get("/projects", headers=seq)
        async with system.client(**{"X-Project-Token": mine["project_token"]}) as revoked:
            assert (await revoked.get("/projects")).status_code == 401


async def test_idempotency_key_replays_and_appends_nothing(system: System) -> None:
    async with system.admin() as admin:
        body = {"name": "once", "git_url": "file:///once.git"}
        first = await admin.post("/projects", json=body, headers={"Idempotency-Key": "k-1"})
        last_seq = await system.store.stream_last_seq()
        second = await admin.post("/projects", json=body, headers={"Idempotency-Key": "k-1"})
        assert second.status_code == 201
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert await system.store.stream_last_seq() == last_seq
        reused = await admin.post(
            "/projects", json={**body, "name": "other"}, headers={"Idempotency-Key": "k-1"}
        )
        assert reused.status_code == 422
        run = await create_protocol(admin, first.json()["id"])
        start = [
            await admin.post(f"/protocols/{run['id']}/actions/start", headers={"Idempotency-Key": "s"})
            for _ in range(2)
        ]
        assert [r.status_code for r in start] == [200, 200]
        plain = await admin.post(f"/protocols/{run['id']}/actions/start")
        assert plain.status_code == 409


async def test_read_your_writes_and_request_ids(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        run = await create_protocol(admin, project["id"])
        for action, status in (
            ("start", "planning"),
            ("pause", "paused"),
            ("resume", "planning"),
            ("cancel", "cancelled"),
        ):
            written = await admin.post(
                f"/protocols/{run['id']}/actions/{action}", headers={"X-Request-ID": f"req-{action}"}
            )
            assert written.headers["X-Request-ID"] == f"req-{action}"
            read = await admin.get(
                f"/protocols/{run['id']}",
                headers={"X-Min-Event-Sequence": written.headers["X-Event-Sequence"]},
            )
            assert read.json()["status"] == status
        events = (await admin.get(f"/protocols/{run['id']}/events")).json()["data"]
        assert {e["causation_id"] for e in events if e["type"] == "protocol_run.paused"} == {"req-pause"}
        assert all(e["actor"] == "user:admin" for e in events)
        generated = await admin.get("/projects")
        assert len(generated.headers["X-Request-ID"]) >= 32
        too_far = await admin.get("/projects", headers={"X-Min-Event-Sequence": "999999999"})
        assert too_far.status_code == 422
        assert too_far.json()["code"] == "unknown_sequence"


async def test_sse_delivers_live_events_and_resumes(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        received: list[tuple[int, str]] = []

        async def listen(headers: dict[str, str], until: str) -> None:
            async with admin.stream(
                "GET", "/events/stream", params={"project_id": project["id"]}, headers=headers
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                event_id = None
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                    elif line.startswith("event: ") and event_id is not None:
                        received.append((event_id, line[7:]))
                        if line[7:] == until:
                            return

        listener = asyncio.create_task(listen({}, "protocol_run.planning_requested"))
        run = await create_protocol(admin, project["id"])
        await admin.post(f"/protocols/{run['id']}/actions/start")
        await asyncio.wait_for(listener, 10)
        assert [t for _, t in received] == [
            "project.registered",
            "project.token_issued",
            "protocol_run.created",
            "protocol_run.planning_requested",
        ]
        resume_from = received[-2][0]
        received.clear()
        await asyncio.wait_for(
            listen({"Last-Event-ID": str(resume_from)}, "protocol_run.planning_requested"), 10
        )
        assert [t for _, t in received] == ["protocol_run.planning_requested"]


async def test_queues_jobs_branches_and_metrics(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, steps, _ = await planned(admin, system.repo, project["id"], steps=2)
        running = await admin.post(f"/protocols/{run_id}/actions/run_next_step")
        seq = {"X-Min-Event-Sequence": running.headers["X-Event-Sequence"]}
        jobs = (await admin.get("/queues/jobs", headers=seq)).json()["data"]
        assert [(j["kind"], j["status"], j["step_run_id"]) for j in jobs] == [
            ("execution", "queued", steps[0])
        ]
        queues = (await admin.get("/queues")).json()
        assert queues["stream"].startswith("DF_API_")
        assert any(q["name"] == "projector" for q in queues["data"])
        branches = (await admin.get(f"/projects/{project['id']}/branches")).json()["data"]
        assert [b["name"] for b in branches] == ["0001-add-login-page"]
        early = await admin.post(
            f"/projects/{project['id']}/branches/0001-add-login-page/delete", json={"confirm": True}
        )
        assert early.status_code == 409
        await admin.post(f"/protocols/{run_id}/actions/cancel")
        unconfirmed = await admin.post(
            f"/projects/{project['id']}/branches/0001-add-login-page/delete", json={"confirm": False}
        )
        assert unconfirmed.status_code == 422
        deleted = await admin.post(
            f"/projects/{project['id']}/branches/0001-add-login-page/delete", json={"confirm": True}
        )
        assert deleted.status_code == 202
        assert deleted.json()["deletion_requested"] is True
        metrics = (await admin.get("/metrics")).text
        assert (
            'deksdenflow_api_requests_total{method="POST",route="/protocols/{protocol_run_id}/actions/{action}",status="200"}'
            in metrics
        )
        assert 'deksdenflow_api_appends_total{aggregate="protocol_run"}' in metrics
        assert "deksdenflow_api_request_seconds_bucket" in metrics


async def test_control_characters_are_refused_at_the_edge(system: System) -> None:
    async with system.admin() as admin:
        before = await system.store.stream_last_seq()
        for bad in (
            {"name": "nul\x00", "git_url": "/srv/u.git"},
            {"name": "bell\x07", "git_url": "/srv/u.git"},
        ):
            response = await admin.post("/projects", json=bad)
            assert response.status_code == 422, response.text
        assert await system.store.stream_last_seq() == before, "nothing was appended"
        ok = await admin.post("/projects", json={"name": "tabs\tand\nnewlines", "git_url": "/srv/u.git"})
        assert ok.status_code == 201


async def test_step_actions_run_qa_and_retry(system: System) -> None:
    async with system.admin() as admin:
        project = await create_project(admin)
        run_id, steps, _ = await planned(admin, system.repo, project["id"], steps=2)
        run = await admin.post(f"/steps/{steps[0]}/actions/run")
        assert run.status_code == 200, run.text
        assert (run.json()["status"], run.json()["step_status"]) == ("running", "running")
        busy = await admin.post(f"/steps/{steps[1]}/actions/run")
        assert busy.status_code == 409
        assert "finish it first" in busy.json()["message"]
        await as_worker(
            system.repo, run_id, cmd.RecordStepExecutionCompleted(step_run_id=steps[0], commit_sha="a1")
        )
        qa = await admin.post(f"/steps/{steps[0]}/actions/run_qa")
        assert qa.status_code == 200, qa.text
        assert qa.json()["events"] == ["protocol_run.qa_requested"]
        again = await admin.post(f"/steps/{steps[0]}/actions/run_qa")
        assert again.status_code == 409
        await as_worker(
            system.repo, run_id, cmd.RecordQaVerdict(step_run_id=steps[0], qa_attempt=1)
        )  # no verdict: FAIL
        seq = {"X-Min-Event-Sequence": str(await system.store.stream_last_seq())}
        protocol = (await admin.get(f"/protocols/{run_id}", headers=seq)).json()
        assert protocol["status"] == "blocked"
        step = (await admin.get(f"/steps/{steps[0]}", headers=seq)).json()
        assert (step["status"], step["last_verdict"]) == ("failed", "fail")
        retried = await admin.post(f"/protocols/{run_id}/actions/retry_latest")
        assert retried.json()["status"] == "running"
        step = (
            await admin.get(
                f"/steps/{steps[0]}", headers={"X-Min-Event-Sequence": retried.headers["X-Event-Sequence"]}
            )
        ).json()
        assert (step["status"], step["retries"]) == ("running", 1)


async def test_model_defaults_round_trip_with_unset_phases_as_null(system: System) -> None:
    async with system.admin() as admin:
        body = {"name": "m", "git_url": "/srv/u.git", "default_models": {"exec": "gpt-5.1-codex"}}
        created = await admin.post("/projects", json=body)
        expected = {
            "planning": None,
            "decompose": None,
            "exec": "gpt-5.1-codex",
            "qa": None,
            "discovery": None,
        }
        assert created.json()["default_models"] == expected
        seq = {"X-Min-Event-Sequence": created.headers["X-Event-Sequence"]}
        read = await admin.get(f"/projects/{created.json()['id']}", headers=seq)
        assert read.json()["default_models"] == expected
