"""Why does the benchmark's model not learn? A fast, instrumented AcoustEmo (cpu-default) training on bench n400.

    ANS=labels STEPS=140 EVAL=70 python benchmarks/diag_learning.py        # the collapse (baseline)
    TXTORACLE=1 ANS=labels STEPS=140 python benchmarks/diag_learning.py     # label words as global tokens
    S1=30 LR=1e-4 LORA=10 ANS=labels STEPS=280 EVAL=140 python benchmarks/diag_learning.py  # stage-1 alignment
    S1=30 LR=1e-4 LORA=10 LW=10 STEPS=280 EVAL=140 python benchmarks/diag_learning.py   # + label weight, full answers

Expects bench_data/n400 (acoustemo bench make --out bench_data/n400 --n 400 --seed 0) and its feature cache in
runs/features. Prints, every EVAL steps: mean train loss, val exact label-set accuracy and manner accuracy from
greedy answers, the utterance tokens' variation across clips (std / mean norm) and norm, and the top answers.
Environment options:
  ANS=labels      train on answers without the explanation (faster, isolates the labels)
  LR, LORA        Q-Former/projection rate and LoRA's multiple of it (LORA=0 freezes LoRA; LR=1e-6 ~ freezes QF)
  DTYPE           LLM dtype (bfloat16); PROJ=scaled puts an RMSNorm at the text-embedding scale after projections
  ORACLE=1        add +3 * (excited - sad) to the prosody channels of every frame (a trivially audible manner)
  TXTORACLE=1     replace the global tokens with the mean text embedding of the gold labels (bypasses the Q-Former)
  STREAMS=prosody the prosody stream alone (slices the cached default-stack features; no Whisper)
  S1=N            first N epochs of LLM-free alignment: the pooled [global; target-utterance] tokens regress the
                  mean text embedding of the gold answer (its deviation from the corpus mean scaled by GAIN=4)
  S1T=labels      stage-1 target from the "Emotions: ..." line only (default: the whole gold answer)
  S1MODE=token   every pooled token (not only their mean) regresses the stage-1 target
  S1MODE=cls     stage 1 is multi-label logistic regression of the labels from the pooled tokens, the heads'
                 weights being the label words' text embeddings (xCLSSCALE), so tokens point at the words
  FREEZE=1        after stage 1, freeze the Q-Formers and projections; stage 2 trains LoRA only
  LW=W            count the answer's "Emotions:" tokens W times in the loss (TrainConfig.label_loss_weight)
  BS, STEPS, EVAL, NVAL, T (threads), SEED
"""
import functools, glob, json, os, sys, time, random
import torch
from acoustemo.config import ModelConfig
from acoustemo.data.manifest import read_manifest
from acoustemo.data.dataset import AcoustEmoDataset, collate
from acoustemo.features.cache import load_features
from acoustemo.model.acoustemo import AcoustEmoModel
from acoustemo.training import acoustic_stats
E = lambda k, d: os.environ.get(k, d)
torch.manual_seed(int(E("SEED", "0"))); random.seed(0)
from acoustemo.features.prosody import CHANNELS as PROSODY_CHANNELS
torch.set_num_threads(int(E("T", "2")))
ROOT = E("ROOT", "bench_data/n400")
files = {os.path.basename(f).split('.')[0]: f for f in glob.glob(f'{ROOT}/runs/features/*.safetensors')}
def load(c):
    f = load_features(files[c.id])
    if E("STREAMS", "") == "prosody":  # the prosody stream alone (the channels after Whisper's 512)
        import dataclasses
        f = dataclasses.replace(f, data=f.data[:, 512:], streams=[("prosody", f.data.shape[1] - 512)])
    if E("ORACLE", ""):
        import dataclasses, numpy as np
        d = np.array(f.data, copy=True)
        d[:, 512:] += 3.0 * (("excited" in c.labels) - ("sad" in c.labels))
        f = dataclasses.replace(f, data=d)
    return f
tr = read_manifest(f"{ROOT}/train.jsonl"); va = read_manifest(f"{ROOT}/val.jsonl")[: int(E("NVAL", "60"))]
if E("ANS", "full") == "labels":
    import dataclasses
    tr = [dataclasses.replace(c, description="") for c in tr]
cfg = ModelConfig.preset("cpu-default", llm_dtype=E("DTYPE", "bfloat16"), ablation=E("ABL", "full"),
                         qformer_dropout=float(E("QDROP", "0.1")),
                         **({"acoustic_streams": [("prosody", len(PROSODY_CHANNELS))]} if E("STREAMS", "") == "prosody" else {}))
model = AcoustEmoModel(cfg)
model.set_acoustic_stats(*acoustic_stats(tr, load))
emb = model.llm.get_input_embeddings().weight
text_rms = emb.float().pow(2).mean().sqrt().item()
if E("PROJ", "linear") == "scaled":  # projections output at the text-embedding scale
    for name in ("utt_proj", "global_proj"):
        p = getattr(model, name)
        if p is not None:
            setattr(model, name, torch.nn.Sequential(p, torch.nn.RMSNorm(p.out_features, eps=1e-6)))
            getattr(model, name)[1].weight.data.fill_(text_rms)
ds = AcoustEmoDataset(tr, load, None, model.tokenizer, cfg)
if E("TXTORACLE", ""):
    bymedia = {}
    for c in tr + va:
        bymedia[c.id] = c
    orig_global = model.global_tokens
    def gt(audio, audio_mask, global_tokens=None):
        t = orig_global(audio, audio_mask, global_tokens)
        words = [" ".join(CUR_LABELS[i]) or "none" for i in range(audio.shape[0])]
        e = [emb[model.tokenizer(w, add_special_tokens=False)["input_ids"]].float().mean(0) for w in words]
        return t * 0 + torch.stack(e).repeat_interleave(cfg.global_num_queries, 0).to(t.dtype)
    model.global_tokens = gt
vds = AcoustEmoDataset(va, load, None, model.tokenizer, cfg, with_answers=False)
pad = model.tokenizer.pad_token_id
lora_scale = float(E("LORA", "1.0")); lr = float(E("LR", "1e-3"))
groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n], "lr": lr}]
lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
if lora_scale > 0: groups.append({"params": lora, "lr": lr * lora_scale})
else: [p.requires_grad_(False) for p in lora]
opt = torch.optim.AdamW(groups, weight_decay=0.05)
BS, STEPS, EVAL = int(E("BS", "1")), int(E("STEPS", "280")), int(E("EVAL", "70"))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 14))
MANNER = {"sad", "excited"}
def evaluate():
    model.eval(); hits = man = 0; outs = []
    for i in range(0, len(vds), 10):
        globals()["CUR_LABELS"] = [va[j].labels for j in range(i, min(i + 10, len(vds)))]; b = collate([vds[j] for j in range(i, min(i + 10, len(vds)))], pad)
        for (emos, _), c in zip(model.predict_batch(b, max_new_tokens=int(E("GEN", "12"))), va[i:i + 10]):
            g = set(c.labels); p = set(e.lower() for e in emos); outs.append(",".join(sorted(p)))
            hits += p == g; man += (p & MANNER) == (g & MANNER)
    model.train()
    from collections import Counter
    return hits / len(vds), man / len(vds), Counter(outs).most_common(3)
def token_var():
    model.eval()
    with torch.no_grad():
        globals()["CUR_LABELS"] = [va[j].labels for j in range(20)]; b = collate([vds[j] for j in range(20)], pad)
        t = model.utterance_tokens(b["windows"], b["window_mask"], b["window_tokens"]).float()
        K = cfg.num_queries; t = t.view(-1, K, t.shape[-1])
    model.train(); return round((t.std(0).norm(dim=-1) / t.mean(0).norm(dim=-1)).mean().item(), 4), round(t.norm(dim=-1).mean().item(), 2)
S1 = int(E("S1", "0"))
if S1:
    from acoustemo.data.prompt import format_answer
    full = read_manifest(f"{ROOT}/train.jsonl")
    with torch.no_grad():
        tv = []
        for c in full:
            text = format_answer(c.labels, "" if E("S1T", "answer") == "labels" else c.description)
            ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
            tv.append(emb[ids].float().mean(0))
        tv = torch.stack(tv); tmean = tv.mean(0); g = float(E('GAIN', '4')); tv = tmean + (tv - tmean) * g; tvar = (tv.var(0).mean() + 1e-8).expand(tv.shape[1])
    qparams = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    LABELS = sorted({w for c in full for w in c.labels})
    with torch.no_grad():
        LABEL_E = torch.stack([emb[model.tokenizer(" " + w, add_special_tokens=False)["input_ids"]].float().mean(0)
                               for w in LABELS])
    label_bias = torch.zeros(len(LABELS), requires_grad=True)
    o1 = torch.optim.AdamW(qparams + [label_bias], lr=float(E("S1LR", "1e-3")), weight_decay=0.05)
    t1 = time.time()
    for ep in range(S1):
        perm = torch.randperm(len(ds)).tolist(); tot = 0
        for i in range(0, len(perm), 16):
            idx = perm[i:i + 16]; exs = [ds[j] for j in idx]
            b = collate(exs, pad)
            ut = model.utterance_tokens(b["windows"], b["window_mask"], b["window_tokens"]).float()
            gt = model.global_tokens(b["audio"], b["audio_mask"], b["global_tokens"]).float()
            K, G = cfg.num_queries, cfg.global_num_queries
            ut = ut.view(-1, K, ut.shape[-1]); gt = gt.view(-1, G, gt.shape[-1])
            pools = []; w = 0
            for bi, j in enumerate(idx):
                c = full[j]; n = len(c.utterances)
                tgt = [k for k, u in enumerate(c.utterances) if u.speaker == c.target_speaker] or list(range(n))
                toks = torch.cat([gt[bi], ut[w + torch.tensor(tgt)].flatten(0, 1)]); w += n
                if E("S1MODE", "pool") == "cls":  # logistic heads whose weights are the label words' embeddings
                    logits = toks.mean(0) @ LABEL_E.T * float(E("CLSSCALE", "1")) + label_bias
                    gold = torch.tensor([w in c.labels for w in LABELS], dtype=torch.float32)
                    pools.append(torch.nn.functional.binary_cross_entropy_with_logits(logits, gold, reduction="none"))
                elif E("S1MODE", "pool") == "token":  # every token regresses the target, not only their mean
                    pools.append((((toks - tv[j]) ** 2) / tvar).mean(0))
                else:
                    pools.append((((toks.mean(0) - tv[j]) ** 2) / tvar))
            loss = torch.stack(pools).mean()
            o1.zero_grad(); loss.backward(); o1.step(); tot += loss.item()
        print("stage1 epoch", ep, round(tot / (len(perm) / 16), 3), f"{time.time()-t1:.0f}s", flush=True)
    if E("FREEZE", ""):  # stage 2 trains LoRA only: the aligned acoustic path stays as stage 1 left it
        for p in qparams:
            p.requires_grad_(False)
        opt = torch.optim.AdamW([{"params": lora, "lr": lr * lora_scale}], weight_decay=0.05)
        groups = opt.param_groups
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 14))
print("text rms", text_rms, "token var", token_var(), flush=True)
t0 = time.time(); step = 0; losses = []
model.train()
while step < STEPS:
    perm = torch.randperm(len(ds)).tolist()
    for i in range(0, len(perm) - BS + 1, BS):
        CUR_LABELS = [tr[j].labels for j in perm[i:i + BS]]; b = collate([ds[j] for j in perm[i:i + BS]], pad)
        out = model(**{k: v for k, v in b.items() if k != "ids"}, emotion_weight=float(E("LW", "1")))
        # label-token loss: first answer tokens up to the newline
        opt.zero_grad(); out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step(); sched.step(); step += 1; losses.append(out.loss.item())
        if step % EVAL == 0 or step == STEPS:
            acc, man, top = evaluate()
            print(f"step {step} loss {sum(losses[-EVAL:])/len(losses[-EVAL:]):.3f} val exact {acc:.2f} manner {man:.2f} "
                  f"var {token_var()} top {top} {time.time()-t0:.0f}s", flush=True)
        if step >= STEPS: break
