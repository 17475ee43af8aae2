# チケットページのメッセージ（日本語）。すべての言語で同じ ID を定義します。

page-footer = このページは { $brand } が提供しています。
page-continue = 続ける
page-back-to-app = { $app } に戻る

## 使用できないリンク
page-link-used-title = 使用済みのリンク
page-link-used = このリンクはすでに使用されています。新しいリンクをリクエストしてください。
page-link-expired-title = 期限切れのリンク
page-link-expired = このリンクの有効期限が切れています。新しいリンクをリクエストしてください。
page-link-invalid-title = 無効なリンク
page-link-invalid = このリンクは無効です。メールのリンク全体を開いたか確認してください。
page-session-title = もう一度お試しください
page-session = フォームの有効期限が切れたか、別のページから送信されました。メールのリンクをもう一度開いてください。
page-too-many-title = 試行回数が多すぎます
page-too-many = 試行回数が多すぎます。1 分ほど待ってから、もう一度お試しください。
page-error-title = 問題が発生しました
page-error = 操作を完了できません。しばらくしてからもう一度お試しください。

## メールアドレスの確認
page-verify-title = メールアドレスを確認してください
page-verify-intro = { $email } があなたのメールアドレスであることを確認してください。
page-verify-button = メールアドレスを確認する
page-verify-done-title = メールアドレスを確認しました
page-verify-done = メールアドレスの確認が完了しました。
page-verify-already = このアカウントはすでに確認済みです。
page-verify-no-user = アカウントが存在しないか、確認コードが無効です。

## パスワードの変更
page-password-title = パスワードを変更する
page-password-intro = { $email } の新しいパスワードを選んでください。
page-password-new = 新しいパスワード
page-password-confirm = 新しいパスワード（確認）
page-password-hint = { $min } 文字以上にしてください。関係のない単語を並べた長いフレーズは、強力で覚えやすいパスワードになります。
page-password-button = パスワードを変更する
page-password-mismatch = 2 つのパスワードが一致しません。
page-password-too-short = パスワードは { $min } 文字以上にしてください。
page-password-too-long = パスワードは { $max } 文字以下にしてください。
page-password-weak = このパスワードは推測されやすすぎます。長くするか、関係のない単語を加えてください。
page-password-done-title = パスワードを変更しました
page-password-done = 新しいパスワードでアプリケーションにログインできます。
page-password-failed = 操作を完了できません。もう一度お試しください。

## 多要素認証の登録
page-mfa-title = 2 段階認証を設定する
page-mfa-otp-intro = 認証アプリでこの QR コードをスキャンし、表示される 6 桁のコードを入力してください。
page-mfa-otp-qr-alt = 認証アプリでスキャンする QR コード
page-mfa-otp-manual = スキャンできない場合は、代わりにこのキーをアプリに入力してください:
page-mfa-code = 6 桁のコード
page-mfa-verify-button = 確認して有効にする
page-mfa-otp-wrong = コードが正しくありません。端末の時刻を確認し、現在のコードを入力してください。
page-mfa-email-intro = { $email } に 6 桁のコードをお送りします。
page-mfa-email-send = コードをメールで送る
page-mfa-email-sent = { $email } にコードを送信しました。10 分で有効期限が切れます。
page-mfa-email-wrong = コードが正しくないか、有効期限が切れています。
page-mfa-done-title = 2 段階認証が有効になりました
page-mfa-done = アカウントは 2 段階認証で保護されています。
page-mfa-already = 2 段階認証はすでに有効になっています。
