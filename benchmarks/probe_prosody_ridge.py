"""Ridge probe: can pooled prosody of the target speaker's utterance windows predict the benchmark labels?
Prints per-label accuracy on the test split, raw and after per-frame LayerNorm (the figures in BENCHMARKS.md).
Usage: python benchmarks/probe_prosody_ridge.py  (expects bench_data/n400 and its runs/features cache)"""
import json, numpy as np, glob, os
from acoustemo.features.cache import load_features
from acoustemo.data.windows import frame_range
files = {os.path.basename(f).split('.')[0]: f for f in glob.glob('bench_data/n400/runs/features/*.safetensors')}
LABELS = ["sad","excited","anxious","angry","surprised"]
def ln(x):
    m = x.mean(-1, keepdims=True); s = x.std(-1, keepdims=True) + 1e-5
    return (x - m) / s
def feats(split, use_ln):
    X, Y = [], []
    for line in open(f'bench_data/n400/{split}.jsonl'):
        c = json.loads(line)
        f = load_features(files[c['id']])
        p = f.data[:, 512:]
        if use_ln: p = ln(p)
        rows = []
        for u in c['utterances']:
            if u['speaker'] != c['target_speaker']: continue
            a, b = frame_range(u['start'], u['end'], f.frame_rate_hz, len(p))
            w = p[a:b]
            rows.append(np.concatenate([w.mean(0), w.std(0), w.max(0), w.min(0)]))
        r = np.array(rows)
        X.append(np.concatenate([r.mean(0), r.max(0)]))
        Y.append([l in c['labels'] for l in LABELS])
    return np.array(X), np.array(Y)
for use_ln in (False, True):
    Xtr, Ytr = feats('train', use_ln); Xte, Yte = feats('test', use_ln)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    # ridge "classifier" per label
    A = np.c_[Xtr, np.ones(len(Xtr))]; B = np.c_[Xte, np.ones(len(Xte))]
    W = np.linalg.solve(A.T @ A + 10 * np.eye(A.shape[1]), A.T @ (Ytr * 2 - 1.0))
    P = (B @ W) > 0
    acc = (P == Yte).mean(0)
    print('LN' if use_ln else 'raw', dict(zip(LABELS, acc.round(2))))
