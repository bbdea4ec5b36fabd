"""The classroom edition: mark the exercises nbgrader's way, make the student edition, grade submissions.

Two modules: `edition` works on notebook files alone (marking, the student edition); `grading`
executes students' notebooks in fresh kernels and reads the checks' verdicts as data. This
package sits beside `checks` (above the lessons) and imports neither: it reads the verdicts by
their MIME type (`netlab.core.checking.CHECK_MIME`), the contract between the two (README,
"Teaching with netlab").
"""
