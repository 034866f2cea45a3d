#!/bin/bash
# The study: one command, run from a snapshot of branch r-study (so later edits of the worktree cannot reach its jobs).
cd /tmp/study-snap
export PYTHONPATH=/tmp/study-snap/src DATA_DIR=/work/shared/data ATTNLAB_OUTPUTS=/work/wt-study/outputs ATTNLAB_CACHE=/work/wt-study/.cache/attnlab
exec /work/wt-study/.venv/bin/attnlab-train -m hydra/launcher=parallel hydra.launcher.n_jobs=2 hydra.launcher.threads_per_job=1 \
    experiment=transformer_mt budget=5 seed=1,2,3 \
    +ablation=baseline,pos_learned,pos_none,attn_additive,norm_rms,norm_pre \
    tokenizer=word_min5 data.max_len=10 data.length_policy=filter data.num_val=500 data.num_test=2000 \
    model.decode.max_steps=12 callbacks.checkpoint_averaging=null model.plot_attention=false '~callbacks.progress_bar' \
    hydra.sweep.dir=/work/wt-study/outputs/transformer_mt/study
