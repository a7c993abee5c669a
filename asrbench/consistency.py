"""Are the transcripts right? Deterministic decoding gives the same text for the same input every time, so a
transcript that differs shows state shared or left behind: between a way's requests (drift from the way's own first
transcript), or between instances alive at once (a transcript unlike the one a single instance alone gives).
"""

from .engines.chatllm import DECODING_OPTIONS, decoding_settings

DIFFERENCES_KEPT = 20  # distinct wrong transcripts kept in a summary (every record keeps its own)


def deterministic(config) -> bool:
    """Whether this run's engine decodes deterministically, as far as its config says: chatllm.cpp with greedy
    decoding or a fixed seed, and the other engines (greedy, or fixed text)."""
    if config.engine != "chatllm":
        return True
    extra = list(config.engine_args or [])
    return decoding_settings(DECODING_OPTIONS[config.decoding] + extra, config.decoding, extra)["deterministic"]


def needs_reference(config) -> bool:
    """A run with more than one instance alive in a worker (--instances, --concurrency) checks every transcript
    against a single instance's, when decoding is deterministic (under sampling a difference proves nothing)."""
    several = (config.instances or 1) > 1 or any(c > 1 for c in config.concurrency or [1])
    return several and deterministic(config)


def check(records: list[dict], reference: dict) -> dict:
    """Each request's transcript against the single-instance transcript of the same input (reference: audio ->
    text). Marks every record (same_as_single_instance) and says which requests and instances differ."""
    by_instance, differences, compared = {}, {}, 0
    for record in records:
        expected = reference.get(record.get("audio"))
        if expected is None or record.get("raw_transcript") is None:
            continue
        compared += 1
        same = record["raw_transcript"] == expected
        record["same_as_single_instance"] = same
        instance = record.get("instance")
        by_instance.setdefault(instance, []).append(same)
        if not same:
            found = differences.setdefault((record["audio"], record["raw_transcript"]), {
                "audio": record["audio"], "transcript": record["raw_transcript"], "single_instance": expected,
                "requests": 0, "instances": set(), "first_iteration": record.get("iteration")})
            found["requests"] += 1
            found["instances"].add(instance)
    wrong = sorted((i for i, sames in by_instance.items() if not all(sames)), key=_order)
    kept = sorted(differences.values(), key=lambda d: -d["requests"])[:DIFFERENCES_KEPT]
    return {"requests": compared, "differing": sum(d["requests"] for d in differences.values()),
            "instances": len(by_instance), "instances_right": len(by_instance) - len(wrong), "instances_wrong": wrong,
            "distinct_wrong_transcripts": len(differences),
            "differences": [dict(d, instances=sorted(d["instances"], key=_order)) for d in kept]}


def _order(instance):
    """Instances are numbers, or 'process/instance' for the processes of one load (see scheduling.merge_processes)."""
    return (not isinstance(instance, int), instance if isinstance(instance, int) else str(instance))


def flag(line: str, key: str, found: dict) -> str:
    """A verdict line never reads clean when transcripts are wrong: the finding goes first, before the memory verdict."""
    if not found or not found["differing"]:
        return line
    named = ", ".join(str(i) for i in found["instances_wrong"][:8]) + (", ..." if len(found["instances_wrong"]) > 8 else "")
    head = (f"{key}: WRONG TRANSCRIPTS: {found['differing']} of {found['requests']} requests differ from one instance "
            f"alone ({len(found['instances_wrong'])} of {found['instances']} instances: {named}); memory: ")
    return head + line[len(key) + 2:] if line.startswith(f"{key}: ") else head + line


def transcript_drift(iterations: dict) -> dict:
    """Per way: how many transcripts differ from the way's own first, and from every other way's first.

    The same audio decoded deterministically gives the same text every time, so a restart() that leaves state
    behind shows here as transcripts that drift; under sampling, differences are expected noise. With an input set,
    each transcript is compared with the first transcript of the same file."""
    transcripts = {way: [(r.get("iteration", i + 1), r.get("audio"), r["raw_transcript"]) for i, r in enumerate(records)
                         if r.get("raw_transcript") is not None]
                   for way, records in iterations.items()}
    firsts = {way: {} for way in transcripts}
    for way, texts in transcripts.items():
        for _, audio, t in texts:
            firsts[way].setdefault(audio, t)
    drift = {}
    for way, texts in transcripts.items():
        if not texts:
            continue
        differing = [number for number, audio, t in texts if t != firsts[way][audio]]
        drift[way] = {
            "transcripts": len(texts),
            "distinct": len({t for _, _, t in texts}),
            "differ_from_first": len(differing),
            "first_differing_iteration": differing[0] if differing else None,
            "differ_from_first_of": {other: sum(1 for _, audio, t in texts if t != first.get(audio, t))
                                     for other, first in firsts.items() if other != way and first},
        }
    return drift


def drift_note(drift: dict | None, decoding: dict | None) -> str:
    """The verdict line's mention of drift: only when decoding is deterministic (else differences are sampling)."""
    if not drift or not (decoding or {}).get("deterministic"):
        return ""
    n = drift["transcripts"]
    parts = [f"{drift['differ_from_first']} of {n} differ from the first"
             f" (from iteration {drift['first_differing_iteration']})"] if drift["differ_from_first"] else []
    parts += [f"{count} of {n} from {other}'s first" for other, count in drift["differ_from_first_of"].items() if count]
    return f"; transcript drift: {', '.join(parts)}" if parts else ""
