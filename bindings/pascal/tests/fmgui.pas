{ OnChange through a Windows message loop, as a GUI program gets it; run
  by filemap-ffi/tests/pascal.rs on Windows.
    fmgui NAME COUNT
  Opens NAME, prints "opened existed=0|1", then only pumps messages. The
  unit's watch thread queues each change (TThread.Queue); WakeMainThread,
  the hook a GUI framework installs, posts a message to a hidden window
  whose window procedure runs CheckSynchronize, so OnChange runs on the
  main thread inside DispatchMessage. Each prints
  "changed main=1|0 L1|L2|..." (main=1: on the main thread); after COUNT
  it prints "done" and exits. }
program fmgui;

{$mode objfpc}{$H+}

uses
  Windows, Classes, SysUtils, filemap;

const
  WM_SYNCHRONIZE = WM_APP + 7;

type
  THandler = class
    Wnd: HWND;
    Fired, Wanted: Integer;
    procedure Changed(Sender: TObject);
    procedure Wake(Sender: TObject);
  end;

var
  Handler: THandler;
  Map: TFileMap;
  Cls: WNDCLASSW;
  M: MSG;
  Code: Integer;

procedure Say(const S: string);
begin
  WriteLn(S);
  Flush(Output);
end;

function Joined(Strings: TStrings): string;
var
  J: Integer;
begin
  Result := '';
  for J := 0 to Strings.Count - 1 do
  begin
    if J > 0 then
      Result := Result + '|';
    Result := Result + Strings[J];
  end;
end;

procedure THandler.Changed(Sender: TObject);
var
  Main: Integer;
begin
  Main := Ord(GetCurrentThreadId = MainThreadID);
  Inc(Fired);
  Say(Format('changed main=%d %s', [Main, Joined(TFileMap(Sender).MapStrings)]));
  if Fired >= Wanted then
    PostQuitMessage(0);
end;

{ Called on the watch thread by TThread.Queue: only posts. }
procedure THandler.Wake(Sender: TObject);
begin
  PostMessageW(Wnd, WM_SYNCHRONIZE, 0, 0);
end;

function WndProc(H: HWND; Msg: UINT; WP: WPARAM; LP: LPARAM): LRESULT; stdcall;
begin
  if Msg = WM_SYNCHRONIZE then
  begin
    CheckSynchronize;
    Result := 0;
    Exit;
  end;
  Result := DefWindowProcW(H, Msg, WP, LP);
end;

begin
  if ParamCount < 2 then
  begin
    Say('usage: fmgui NAME COUNT');
    Halt(2);
  end;
  Handler := THandler.Create;
  Val(ParamStr(2), Handler.Wanted, Code);
  FillChar(Cls, SizeOf(Cls), 0);
  Cls.lpfnWndProc := @WndProc;
  Cls.hInstance := HInstance;
  Cls.lpszClassName := 'FmGuiWindow';
  RegisterClassW(Cls);
  Handler.Wnd := CreateWindowExW(0, 'FmGuiWindow', 'fmgui', WS_OVERLAPPED,
    0, 0, 0, 0, 0, 0, HInstance, nil);
  if Handler.Wnd = 0 then
  begin
    Say('error CreateWindowEx failed');
    Halt(1);
  end;
  WakeMainThread := @Handler.Wake;
  Map := TFileMap.Create(nil);
  Map.MapName := ParamStr(1);
  Map.OnChange := @Handler.Changed;
  Map.OpenMap;
  if Map.ExistsAlready then
    Say('opened existed=1')
  else
    Say('opened existed=0');
  while GetMessageW(M, 0, 0, 0) do
  begin
    TranslateMessage(M);
    DispatchMessageW(M);
  end;
  Map.CloseMap;
  Map.Free;
  Say('done');
end.
