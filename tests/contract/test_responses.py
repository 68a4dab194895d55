"""OpenAI's Responses API on the door, through the official `openai` SDK
(`client.responses.create`), mapped onto an upstream that speaks only chat completions (the
OpenAI fake's chat route): text out, streaming events, `previous_response_id` continuing the
stored conversation (per key), metering under its own route, and what cannot be mapped refused
with a 400 that names the field."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")

import openai

from gateway.journal.serving import ServeStore
from gateway.serve import running
from tests.contract.test_serve import _settled, openai_dep  # noqa: F401  (a fixture)


def _chat_bodies(fake) -> list[dict]:
    return [
        json.loads(r.body) for r in fake.server.requests if r.path.endswith("/chat/completions")
    ]


def test_responses_create_stream_and_continue(openai_dep):  # noqa: F811
    fake, dep = openai_dep
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        raw = client.responses.with_raw_response.create(
            model="brand-voice", input="where is drill four", instructions="be brief",
            max_output_tokens=32,
        )  # fmt: skip
        first = raw.parse()
        assert first.id == "resp_" + raw.headers["x-request-id"][4:]
        assert first.status == "completed" and first.output_text.endswith("ruof llird si erehw")
        assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
        sent = _chat_bodies(fake)[-1]
        assert sent["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "where is drill four"},
        ]
        assert sent["max_tokens"] == 32

        # a follow-up continues the stored conversation (instructions are not carried over)
        second = client.responses.create(
            model="brand-voice", previous_response_id=first.id,
            input=[{"role": "user", "content": [{"type": "input_text", "text": "and drill five?"}]}],
        )  # fmt: skip
        assert second.previous_response_id == first.id
        assert _chat_bodies(fake)[-1]["messages"] == [
            {"role": "user", "content": "where is drill four"},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "and drill five?"},
        ]

        # streaming: the Responses events, in order, adding up to the same kind of answer
        events = list(
            client.responses.create(model="brand-voice", input="hello there", stream=True)
        )
        kinds = [e.type for e in events]
        assert kinds[:4] == [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added",
        ]  # fmt: skip
        assert kinds[-4:] == [
            "response.output_text.done", "response.content_part.done",
            "response.output_item.done", "response.completed",
        ]  # fmt: skip
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = events[-1].response
        assert deltas == done.output_text and deltas.endswith("ereht olleh")
        assert done.usage.output_tokens > 0 and [e.sequence_number for e in events] == list(
            range(len(events))
        )
        third = client.responses.create(
            model="brand-voice", previous_response_id=done.id, input="ok"
        )
        assert _chat_bodies(fake)[-1]["messages"][1] == {"role": "assistant", "content": deltas}
        assert third.status == "completed"
    rows = _settled(4)
    assert [r.route for r in rows] == ["responses"] * 4
    assert all(r.deployment_id == dep.id and r.status == 200 for r in rows)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"background": True}, "background"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content"),
        ({"previous_response_id": "resp_nope"}, "previous_response_id"),
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ],
)  # fmt: skip
def test_what_cannot_be_mapped_is_refused(openai_dep, extra, param):  # noqa: F811
    fake, _ = openai_dep
    before = len(_chat_bodies(fake))
    with running() as url:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="brand-voice", **{"input": "hi", **extra})
    assert err.value.body["param"] == param
    assert len(_chat_bodies(fake)) == before  # nothing reached the upstream


def test_a_stored_response_belongs_to_its_key(openai_dep):  # noqa: F811
    with ServeStore() as store:
        _, mine = store.create_key("app")
        _, theirs = store.create_key("other")
    with running() as url:
        me = openai.OpenAI(base_url=url, api_key=mine, max_retries=0)
        them = openai.OpenAI(base_url=url, api_key=theirs, max_retries=0)
        first = me.responses.create(model="brand-voice", input="secret plans")
        with pytest.raises(openai.BadRequestError, match="not found"):
            them.responses.create(model="brand-voice", input="more", previous_response_id=first.id)
        assert me.responses.create(model="brand-voice", input="more", previous_response_id=first.id)

        # retrieve and delete: the stored response, for its key only
        got = me.responses.retrieve(first.id)
        assert got.id == first.id and got.output_text == first.output_text
        with pytest.raises(openai.NotFoundError):
            them.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            them.responses.delete(first.id)
        me.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            me.responses.retrieve(first.id)
        with pytest.raises(openai.BadRequestError, match="not found"):
            me.responses.create(model="brand-voice", input="x", previous_response_id=first.id)
        unstored = me.responses.create(model="brand-voice", input="forget me", store=False)
        with pytest.raises(openai.NotFoundError):
            me.responses.retrieve(unstored.id)
