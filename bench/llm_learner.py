"""Would a learner on the bundled LLM's per-option log-probabilities pay its way? A probe.

Issue 13 allows a learner that scores each option by the local model's log-probability of
the option's tokens after the question and the text read, if it wins on the measurements
and trains within the time goal (100 000 labels on the demo's 815 items in under a minute).
This measures the two things that decide it, on D*_prediction items of a fresh demo, with
the fields a SIMULATED labeler cites as the text (the most favourable context there is):

- seconds per item: the prompt evaluated once, each option's tokens scored from a saved
  state (the cheapest exact way with llama-cpp-python), against an anchor measured in the
  same run — one reader-learner prediction of the same item;
- zero-shot accuracy of the option with the highest log-probability (the features such a
  learner would feed a calibration layer; if they carry little, no layer rescues them).

    python -m bench.llm_learner            # 40 items, about 2 minutes on two cores
    python -m bench.llm_learner --items 143
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.tee import tee
from kb.demo import build_demo
from kb.item_import import answer_key_path, read_answer_key
from kb.items import items_in
from kb.libraries import get_library
from kb.progress import NoProgress
from models.imitation import trainer
from models.imitation.retrieval import Retriever, View
from models.imitation.simulated_labeler import SimulatedLabeler
from models.llm.model import LocalLLM, chosen_repack, repacking


def prompt_for(view: View) -> str:
    facts = "\n".join(f"{node.path}: {node.text[:200]}" for node in view.nodes if node.key.startswith("cited:"))
    return f"Facts:\n{facts}\nQuestion: {view.x}\nAnswer ({' / '.join(view.options)}):"


def option_log_probabilities(llama: Any, prompt: str, options: tuple[str, ...]) -> list[float]:
    base = llama.tokenize(prompt.encode())
    llama.reset()
    llama.eval(base)
    state = llama.save_state()
    scores = []
    for option in options:
        tokens = llama.tokenize((" " + option).encode(), add_bos=False)
        llama.load_state(state)
        total, previous = 0.0, np.array(llama.scores[len(base) - 1])
        for token in tokens:
            total += float(previous[token] - np.logaddexp.reduce(previous))
            llama.eval([token])
            previous = np.array(llama.scores[llama.n_tokens - 1])
        scores.append(total)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    from llama_cpp import Llama

    with tee("llm_learner"), tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "demo.db"
        conn, _ = build_demo(workspace, lambda _: NoProgress(), index_procs=2)
        library = get_library(conn, "factbook")
        SimulatedLabeler(conn, workspace, library, "probe", noise=0.1, seed=1).label(items_in(conn, ("validation",)))
        trainer.train(conn, workspace, library, seed=0)
        fitted, _ = trainer.load_model(conn, library)
        answers = read_answer_key(answer_key_path(workspace))
        items = items_in(conn, ("prediction",))[: args.items]
        retriever = Retriever(conn, workspace, library, plan=fitted.plan)
        views = [retriever.view(item) for item in items]
        path = LocalLLM.open().path
        started = time.perf_counter()
        choice, _ = chosen_repack(None)  # the model process's rule: on an AMX host llama.cpp's repack crashes
        with repacking(choice.on):
            llama = Llama(model_path=str(path), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
        print(f"loaded {path.name} in {time.perf_counter() - started:.1f} s (repacking {choice.on}: {choice.reason})")
        seconds, anchors, right = [], [], 0
        for item, view in zip(items, views, strict=True):
            started = time.perf_counter()
            scores = option_log_probabilities(llama, prompt_for(view), item.options)
            seconds.append(time.perf_counter() - started)
            right += item.options[int(np.argmax(scores))] == answers[item.uid].y
            started = time.perf_counter()
            trainer.predict_with(fitted, [item], lambda _, view=view: view)
            anchors.append(time.perf_counter() - started)
        retriever.close()
        per_item, anchor = statistics.median(seconds), statistics.median(anchors)
        print(
            f"{len(items)} D*_prediction items: zero-shot accuracy of the most probable option "
            f"{right / len(items):.3f} (the reader learner: see bench/experiment.out.txt)"
        )
        print(
            f"median {per_item:.2f} s per item to score its options (anchor: the reader's prediction of one "
            f"item {anchor * 1000:.1f} ms; ratio {per_item / anchor:,.0f})"
        )
        print(
            f"the 815 items of the 100 000-label bench would need {815 * per_item / 60:.1f} min of scoring "
            "before any fitting: over the one-minute goal"
        )
        conn.close()


if __name__ == "__main__":
    main()
