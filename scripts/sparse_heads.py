"""placeholder"""

def make_figure(out_dir, quick=False):
    raise NotImplementedError
