# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """AWS credentials, shared by every module that talks to AWS (module_utils/sdk/aws.py)."""

    DOCUMENTATION = r"""
options:
  profile:
    description:
      - Named profile from the AWS shared credentials/config files.
      - Without O(profile) or O(access_key), boto3's usual chain applies
        (environment, shared files, instance role).
    type: str
    aliases: [aws_profile]
  access_key:
    description: AWS access key id.
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: AWS secret access key. Required with O(access_key).
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: AWS session token for temporary credentials.
    type: str
    aliases: [aws_session_token]
requirements:
  - boto3 (provider C(aws))
"""
