"""The code the pipeline's stages share, and the user commands `predict` and `compare`.

    data/    from a dataset source to labelled uint8 arrays: sources, decoding, the split
    model/   architectures, augmentation, fitting, the model card, Grad-CAM, serving
    report/  scores, tables and figures of a trained model's predictions
    audit/   suspect labels and near-duplicate photos

Importing it changes nothing in the process: the stages and the two commands quiet
TensorFlow where they start (console.run_stage).
"""
