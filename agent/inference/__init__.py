"""Inference: onnxruntime sessions with a provider policy, model manifests, pure-numpy
pre/post-processing, and one worker thread per station.

Modules:
    manifest     model.yaml (pydantic): name, version, sha256, task, input, labels, output
    graph        what the ONNX graph says; manifest vs graph checks; manifest-less models
    providers    provider wish list -> session; required first choice; install hints
    session      load_model(name, cfg, base_dir) -> ModelRunner (raises ModelLoadError)
    runner       ModelRunner.infer(frame) -> Inspection (never raises per frame)
    preprocess   resize / letterbox (+ mapping back), colour, scale/mean/std, layout
    postprocess  activations, classification; yolo: v5/v8/v11/end2end + class-aware NMS;
                 regions: anomaly maps and segmentation masks -> boxes
    worker       InferenceWorker: newest frame -> inspection, late frames dropped and counted
    benchmark    stage and bare session.run timings (edge-agent bench, bench/)
"""
