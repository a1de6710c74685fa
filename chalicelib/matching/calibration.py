"""stub"""
def threshold_for(stats, target_fpir, gallery_size):
    raise NotImplementedError
def expected_fpir(stats, threshold, gallery_size):
    raise NotImplementedError
def load_stats(model_id):
    raise NotImplementedError
