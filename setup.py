"""ndrsr: Neural Degradation Representation all-in-one restoration for BasicSR."""
from setuptools import find_packages, setup

setup(
    name='ndrsr',
    version='0.1.0',
    description='NDR-Restore (Yao et al., TIP 2024) all-in-one image restoration as a BasicSR plugin',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ndrsr', 'ndrsr.*']),
    # the shipped models (ndrsr.lib.model_zoo): pretrained/<model>/{net_g.pth, net_degrad.pth, network_options.yml}
    # and their recorded sha256 (pretrained/SHA256SUMS, checked on every use)
    package_data={'ndrsr': ['pretrained/*/*', 'pretrained/SHA256SUMS']},
    python_requires='>=3.9',
    install_requires=[
        'basicsr>=1.4.2',
        'torch>=2.0',
        'torchvision',
        'numpy',
        'lmdb',
        'opencv-python',
        'pyyaml',
        'addict',
        'scipy',
        'scikit-image',
        'tqdm',
        'pillow',  # image headers (size before decoding, EXIF orientation): ndrsr.lib.image_header
        'simplejpeg',  # strict JPEG decoding (data cut short and patched): ndrsr.lib.image_header
    ],
    extras_require={
        'test': ['pytest', 'pytest-timeout', 'ruff==0.16.9',
                 # the deployment tests run the real exporters and runtimes (ndrsr[onnx], ndrsr[spandrel])
                 'onnx==1.23.2', 'onnxruntime==1.31.1', 'onnxscript==0.7.2', 'safetensors==0.8.0', 'spandrel==0.4.2',
                 # the page's browser test (tests/app): ndrsr[app] and Playwright driving the system's Chromium
                 'gradio==6.31.0', 'playwright==1.65.2'],
        # ndrsr-app, the local web page (docs/app.md)
        'app': ['gradio>=6.0,<7'],
        # ndrsr-export and ndrsr-restore --weights X.onnx / X.safetensors (docs/inference.md, "Deploying")
        'onnx': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.3', 'safetensors>=0.4'],
        # ndrsr.spandrel.install(): NDR-Restore in spandrel (chaiNNer, ComfyUI)
        'spandrel': ['spandrel>=0.4', 'safetensors>=0.4'],
    },
    entry_points={'console_scripts': [
        'ndrsr-restore=ndrsr.cli.restore:main',
        'ndrsr-degrade=ndrsr.cli.degrade:main',
        'ndrsr-eval=ndrsr.cli.evaluate:main',
        'ndrsr-convert=ndrsr.cli.convert:main',
        'ndrsr-make-lmdb=ndrsr.cli.make_lmdb:main',
        'ndrsr-check=ndrsr.cli.check:main',
        'ndrsr-export=ndrsr.cli.export:main',
        'ndrsr-app=ndrsr.app.main:main',
    ]},
    zip_safe=False,
)
