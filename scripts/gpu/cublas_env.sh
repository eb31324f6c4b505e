# Sourced by the GPU scripts: cudarc loads libcublas at run time, and on the GPU machine it
# lives in PyTorch's nvidia wheels or a CUDA toolkit, neither on the loader's default path.
# Sets `libdirs` (the folders found) and prepends them to LD_LIBRARY_PATH.
libdirs=$(python3 - <<'PY'
import glob, os, site
dirs = set()
roots = site.getsitepackages() + [site.getusersitepackages()]
for root in roots:
    for path in glob.glob(os.path.join(root, "nvidia", "**", "libcublas*.so*"), recursive=True):
        dirs.add(os.path.dirname(path))
for path in glob.glob("/usr/local/cuda*/lib64/libcublas*.so*") + glob.glob("/usr/local/cuda*/targets/*/lib/libcublas*.so*"):
    dirs.add(os.path.dirname(path))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
