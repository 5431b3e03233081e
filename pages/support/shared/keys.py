"""Every session-state key of the app, in one place; widget keys start with `w_` or their page's name."""

from __future__ import annotations

from bincls.training.config import page_settings

# Shared by all pages -----------------------------------------------------------------------------------
DATA_PATHS = "data_paths"  # list[str]: one root or two class folders
CLASS_NAMES = "class_names"  # list[str] | None: renamed classes
SPLIT_RATIOS = "split_ratios"  # (train, val, test)
SPLIT_SEED = "split_seed"
BROWSE_DIR = "browse_dir"  # folder shown by the folder browser
CURRENT_RUN = "current_run"  # run id last started or picked
PREVIEW_SEED = "preview_seed"  # changes on "new batch"
APP_BOOTED = "app_booted"  # app.py has set up the navigation in this session
WANTED_PAGE = "wanted_page"  # page asked for by a direct link before app.py had run
USER_ID = "user_id"  # this browser's id (its cookie): names its state file (pages.support.shared.memory)
USER_COOKIE_SENT = "user_cookie_sent"  # the browser has the id cookie (it sent it, or it was set now)
USER_RESTORED = "user_restored"  # this session has read the state file
USER_SAVED = "user_saved"  # what the state file holds now
WEIGHTS_MESSAGE = "weights_message"  # [(kind, text)]: what taking a weights file did, shown once
WEIGHTS_PATH = "w_weights_path_"  # + the offer's key: the path typed in "no pretrained weights here"
WEIGHTS_UPLOAD = "w_weights_upload_"  # + the offer's key: the weights file uploaded there
WEBCAM = "webcam_"  # + a webcam_capture's key: {"gen": camera generation, "saved": [Capture], "error": str}
WEBCAM_CAMERA = "w_webcam_"  # + the key, "-" and the generation: that capture's camera input

# Data page ---------------------------------------------------------------------------------------------
BROWSE_PICKS = "browse_picks"  # {"A": str | None, "B": str | None}: class folders picked while browsing
DATA_MESSAGE = "data_message"  # [(kind, text)] about the last data choice, shown once
DATA_ROOT_INPUT = "w_data_root"  # text inputs of the "type a path" form
DATA_CLASS_A_INPUT = "w_data_class_a"
DATA_CLASS_B_INPUT = "w_data_class_b"
BROWSE_SELECTED = "w_browse_selected"  # subfolder chosen in the browser's list
UPLOAD_FILES = ("w_upload_a", "w_upload_b")  # file uploaders, one per class
UPLOAD_NAMES = ("w_upload_name_a", "w_upload_name_b")  # class names for the uploads
UPLOAD_GENERATION = "upload_generation"  # bumped after saving, to clear the uploaders
UPLOAD_CAMERA_ON = ("w_upload_camera_a", "w_upload_camera_b")  # webcam toggles: the camera only when on
UPLOAD_PHOTOS = "upload_photos"  # str: the uploads session the webcam photos go into until they are used
SPLIT_VAL_PCT = "w_split_val"  # split sliders, percent; SPLIT_RATIOS stays the truth
SPLIT_TEST_PCT = "w_split_test"
SPLIT_SEED_INPUT = "w_split_seed"
DATA_SKIPPED_PAGE = "w_data_skipped_page"  # page of the skipped-files table
DATA_EXCLUDED_PAGE = "w_data_excluded_page"  # page of the left-out-of-training table
DATA_QUALITY_PAGE = "w_data_quality_page"  # page of the image-quality warnings table
AUDIT_ASKED = "audit_asked"  # {dataset key: True}: the label audit was run for these datasets this session
AUDIT_PAGE = "w_audit_page"  # page of the audit's review grid
AUDIT_SHOW = "w_audit_show"  # which kind of row the review grid shows ("all", "label", ...)
AUDIT_DECISION = "w_audit_decision_"  # + a hash of the image path: one decision widget per reviewed image
AUDIT_MESSAGE = "audit_message"  # [(kind, text)] after saving or forgetting decisions, shown once
AUDIT_BULK = "w_audit_bulk_"  # + "relabel" / "exclude": the score threshold of that bulk action
AUDIT_BULK_UNDO = "audit_bulk_undo"  # (overlay file, bincls.audit.bulk.BulkChange): the last bulk action

# Preview page ------------------------------------------------------------------------------------------
PREVIEW_MODEL = "preview_model"  # registry name whose img_size/mean/std the preview uses
PREVIEW_TRAIN = "preview_train"  # True: train transform (random augmentation); False: eval
PREVIEW_IMAGE = "preview_image"  # path of the image shown in the augmentation preview

# Train and Runs pages ----------------------------------------------------------------------------------
# Session keys of the Train page's settings widgets, by setting name: every setting the schema shows on the
# page (bincls.training.config, `page=Shown(...)`), plus the page's own: a weights file's path and "use
# all GPUs".
TRAIN_KEYS = {name: f"train_{name}" for name in (*page_settings(), "weights_file", "all_gpus")}
TRAIN_PRESET_SHOWN = "train_preset_shown"  # {setting: value}: what the preset last put in each widget
TRAIN_SETTINGS_OPEN = "train_settings_open"  # the Train page's settings expander is open
TRAIN_COLLAPSED_FOR = "train_collapsed_for"  # run id the settings were folded away for, once
TRAIN_LIVE_FIGURES = "train_live_figures"  # the live panel's charts and what they were built from
TRAIN_SAVED = "train_saved"  # {widget key: value}: the Train settings, kept while on other pages
TRAIN_OWN_BUDGETS = "train_own_budgets"  # {recipe: minutes}: time budgets the user set, each for its recipe
TRAIN_BUDGET_PRESET = "train_budget_preset"  # the recipe the time budget widget's value is for
TRAIN_CLEAR_NAME = "train_clear_name"  # a run started: the next run starts without the name typed for it
RUNS_TABLE = "runs_table"  # the Runs table's row selection
RUNS_TABLE_IDS = "runs_table_ids"  # run ids in table order when that selection was made
RUNS_NEW_NAME = "w_runs_new_name"  # the rename dialog's text input
RUNS_MESSAGE = "runs_message"  # [(kind, text)]: engine errors from the last deletion, shown once
RUNS_PAIR = "runs_pair"  # (run id, run id): the two runs the Runs page was asked to test against each other

# Evaluate and Predict pages ----------------------------------------------------------------------------
EVAL_RUN = "w_eval_run"  # run picker on the Evaluate page (run id)
EVAL_SOURCE = "w_eval_source"  # "test" (the run's own test split) or "folder"
EVAL_FOLDER = "w_eval_folder"  # another folder to evaluate on: a root with one subfolder per class
EVAL_THRESHOLD = "w_eval_threshold"  # decision-threshold slider
EVAL_THRESHOLD_FOR = "eval_threshold_for"  # run id the slider was last set up for (from its saved value)
EVAL_MATRIX = "w_eval_matrix"  # confusion-matrix chart: its click selection
EVAL_CELL = "eval_cell"  # (true, predicted) of the confusion-matrix cell clicked; kept as the threshold moves
EVAL_MESSAGE = "eval_message"  # [(kind, text)] after saving a threshold or exporting, shown once
EVAL_FIX = "eval_fix_"  # + gallery + a hash of the image path + action: relabel / exclude / undo buttons
PREDICT_RUN = "w_predict_run"  # run picker on the Predict page
PREDICT_HEATMAPS = "w_predict_heatmaps"  # show Grad-CAM heat maps
PREDICT_UPLOADS = "w_predict_uploads"  # file uploader
PREDICT_CAMERA_ON = "w_predict_camera_on"  # webcam toggle: the browser asks for the camera only when on
PREDICT_CAMERA = "w_predict_camera"  # camera input
PREDICT_FOLDER_INPUT = "w_predict_folder"  # folder path typed for batch prediction
PREDICT_FOLDER = "predict_folder"  # folder submitted for batch prediction (stays until cleared)
PREDICT_EXPORT = "w_predict_export"  # prefix of the Predict page's export widgets (precision, buttons)
EVAL_EXPORT = "w_eval_export"  # the same on the Evaluate page

# Label page ------------------------------------------------------------------------------------------
LABEL_PILE = "label_pile"  # list[str]: the pile's folders
LABEL_CLASSES = "label_classes"  # [str, str]: the two class names
LABEL_PILE_INPUT = "w_label_pile"  # the form's text area (one folder per line)
LABEL_CLASS_INPUTS = ("w_label_class_a", "w_label_class_b")
LABEL_BATCH = "label_batch"  # {"n": batch number, "items": [Suggestion.to_dict() + "why"]}
LABEL_CARD = "w_label_card_"  # + batch number + "_" + index: one card's answer control
LABEL_UNDO = "label_undo"  # [path]: answers given on this page, newest last, for "Undo"
LABEL_ACCEPTED = "label_accepted"  # [path]: the confident guesses accepted by the last click, for its undo
LABEL_MESSAGE = "label_message"  # [(kind, text)]: what the last action did, shown once
LABEL_MAP = "w_label_map"  # the pile map's selection
