"""Setuptools entry for sat2cap; all metadata lives in settings.ini (nbdev style)."""
from configparser import ConfigParser
import setuptools, shlex

cfg_all = ConfigParser(delimiters=['='])
cfg_all.read('settings.ini')
cfg = cfg_all['DEFAULT']

licenses = {'apache2': 'Apache-2.0', 'mit': 'MIT'}        # settings.ini key -> SPDX expression (PEP 639)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

lic = licenses[cfg['license'].lower()]
min_python = cfg['min_python']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
extras = {'dev': dev_requirements, 'hf': ['transformers>=4.30,<6']}
entry_points = {'console_scripts': cfg.get('console_scripts', '').split(),
                # lets nbdev (docs symbol links, show_doc) find this package's index of symbols
                'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]}

setuptools.setup(
    name=cfg['lib_name'],
    license=lic,
    license_files=['LICENSE'],
    classifiers=['Development Status :: ' + statuses[int(cfg['status']) - 1],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Topic :: Scientific/Engineering :: Artificial Intelligence',
                 'Topic :: Scientific/Engineering :: GIS'] +
                ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    project_urls={'Documentation': cfg['doc_host'] + cfg['doc_baseurl'], 'Source': cfg['git_url']},
    # data/ and configs/ hold no code but are shipped inside the package (MANIFEST.in lists them too)
    packages=setuptools.find_namespace_packages(include=['sat2cap', 'sat2cap.*'], exclude=['*.__pycache__']),
    include_package_data=True,
    package_data={'sat2cap.data': ['*'], 'sat2cap.configs': ['*']},
    install_requires=requirements,
    extras_require=extras,
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points=entry_points,
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    keywords=cfg['keywords'],
)
