"""Does speaker-relative pooling raise the linear probe? (issue #17: the features are the first bottleneck)

    python benchmarks/probe_speaker_relative.py bench_data/n1000

The prosody stream of the cached default features, one logistic regression per label (C chosen on val), three
poolings of the target speaker's utterance windows, printed as JSON lines (test Avg, exact label match):
  base           the bench probe's statistics (target windows' mean and max, whole clip)
  speaker        + each target window's statistics after subtracting the target speaker's own median frame, max
                 over windows, and the spread of the window statistics across the target's windows
  speaker+other  + the target's statistics minus the other speaker's (the clip-wide manner, relative)
"""
import json, sys, time
import numpy as np
from acoustemo.data.manifest import read_manifest
from acoustemo.features.base import get_acoustic_encoder
from acoustemo.features.cache import FeatureCache
from acoustemo.data.windows import frame_range
from acoustemo.probe import window_statistics
from acoustemo.evaluate.setlevel import set_level_scores
BENCH=sys.argv[1]
cache=FeatureCache(f"{BENCH}/runs/features"); enc=get_acoustic_encoder("default")
split={s: read_manifest(f"{BENCH}/{s}.jsonl") for s in ("train","val","test")}
def vec(clip, mode):
    f=cache.load(clip,enc); x=f.stream("prosody").astype(np.float64); r=f.frame_rate_hz
    spans={}
    for u in clip.utterances:
        a,b=frame_range(u.start_s,u.end_s,r,len(x)); spans.setdefault(u.speaker,[]).append((a,b))
    tgt=spans.get(clip.target_speaker,[]); oth=[s for k,v in spans.items() if k!=clip.target_speaker for s in v]
    tf=np.concatenate([x[a:b] for a,b in tgt]); of=np.concatenate([x[a:b] for a,b in oth]) if oth else tf
    W=np.stack([window_statistics(x[a:b]) for a,b in tgt])
    base=[W.mean(0).ravel(), W.max(0).ravel(), window_statistics(x).ravel()]
    if mode=="base": return np.concatenate(base)
    med=np.median(tf,0)
    Wn=np.stack([window_statistics(x[a:b]-med) for a,b in tgt])  # speaker-relative
    sp=[Wn.max(0).ravel(), (W.max(0)-W.min(0)).ravel()]            # peak over the speaker's baseline; spread across windows
    rel=[(window_statistics(tf)-window_statistics(of)).ravel()]      # target vs the other speaker (manner)
    if mode=="speaker": return np.concatenate(base+sp)
    return np.concatenate(base+sp+rel)
for mode in ("base","speaker","speaker+other"):
    t=time.time()
    X={s:np.stack([vec(c,mode) for c in cl]) for s,cl in split.items()}
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    labels=sorted({w for c in split["train"] for w in c.labels})
    Y=np.array([[w in c.labels for w in labels] for c in split["train"]])
    best=None
    for C in (0.01,0.1,1.0):
        sc=StandardScaler().fit(X["train"]); ms=[LogisticRegression(C=C,max_iter=3000).fit(sc.transform(X["train"]),Y[:,j]) for j in range(len(labels))]
        def pred(s):
            P=np.stack([m.predict_proba(sc.transform(X[s]))[:,1] for m in ms],1)
            return [[w for w,p in zip(labels,row) if p>=.5] or [labels[int(row.argmax())]] for row in P]
        va=set_level_scores({i:c.labels for i,c in enumerate(split["val"])}, dict(enumerate(pred("val"))), {}, "exact").avg
        if best is None or va>best[0]:
            te=pred("test")
            best=(va,C,set_level_scores({i:c.labels for i,c in enumerate(split["test"])}, dict(enumerate(te)), {}, "exact").avg)
    print(json.dumps({"mode":mode,"cpu":__import__("torch").backends.cpu.get_cpu_capability(),"val":round(100*best[0],2),"C":best[1],"test":round(100*best[2],2),"s":round(time.time()-t)}),flush=True)
